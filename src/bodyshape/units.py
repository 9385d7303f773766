"""Lengths for people: centimeters or inches.

Measurements are computed in centimeters and named ``<what>_cm`` (``measure.MEASUREMENT_NAMES``);
the outputs can show them in inches instead, renamed ``<what>_in``. One place for the
conversion so the CLI, the JSON files, the size recommendation and the web API agree.
"""

from __future__ import annotations

CM_PER_INCH = 2.54
UNITS = ("cm", "in")


def check_units(units: str) -> str:
    """``units`` if it is "cm" or "in", else ``ValueError`` (one line)."""
    if units not in UNITS:
        raise ValueError(f"units must be 'cm' or 'in', got {units!r}")
    return units


def from_cm(value_cm: float, units: str) -> float:
    """A length in cm expressed in ``units`` ("cm" or "in")."""
    return value_cm / CM_PER_INCH if check_units(units) == "in" else value_cm


def rename(name: str, units: str) -> str:
    """``"chest_cm"`` -> ``"chest_in"`` for units "in"; names without ``_cm`` unchanged."""
    return name[:-3] + "_" + units if name.endswith("_cm") else name


def convert_names(values_cm: dict[str, float], units: str, digits: int = 1) -> dict[str, float]:
    """``{name_cm: cm}`` -> ``{name_<units>: value}``, rounded to ``digits`` decimals."""
    return {rename(k, units): round(float(from_cm(v, units)), digits)
            for k, v in values_cm.items()}
