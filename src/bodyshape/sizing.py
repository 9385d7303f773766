"""Size recommendation: body measurements + a size chart -> the size to buy.

A chart is a CSV file (format in docs/SIZING.md): ``garment`` and ``size`` columns, one
column per body measurement (a name of ``measure.MEASUREMENT_NAMES``, e.g. ``chest_cm``, or
the same with ``_in`` for inches) whose cells are a body range ``MIN-MAX`` or a target
``VALUE``, and optional ``ease_cm`` and ``stretch_pct`` columns. Rows of a garment run from
the smallest size to the largest. A target's range reaches halfway to the neighbouring
sizes' (EN 13402-3 designates a size by such control dimensions). Charts that list garment
dimensions give the ease (garment minus body) so that the body range is the garment's minus
the ease; a stretch of s % lets a body up to ``max * (1 + s/100)`` fit. Ease and stretch
apply to girths only.

``recommend(measurements, chart, errors)`` gives one :class:`SizeRecommendation` per garment:

- each size's chance of fitting: the product over the chart's measurements of the chance
  that the true body value lies in the size's range, with the measurement's error taken as
  normal with ``sd = MAE * sqrt(pi / 2)`` (the mean absolute error of a normal variable is
  ``sd * sqrt(2 / pi)``); a measurement without a known error gets ``NOMINAL_SD_CM``;
- the best size is the likeliest; when every size is (numerically) impossible, the body is
  outside the chart or in a gap between sizes, and the size nearest in cm wins;
- "between sizes" when the runner-up is at least ``BETWEEN_RATIO`` as likely as the best
  (or, without any likely size, within ``BETWEEN_CM`` as near);
- ``confidence``: the best size's share of the sizes' chances, only when every measurement
  used has a measured error (otherwise None: no honest figure exists);
- per measurement: "tight" (body above the size's range), "good" or "loose" (below).
"""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

from scipy.special import ndtr

from bodyshape.assets import PACKAGE_DATA
from bodyshape.measure import MEASUREMENT_NAMES
from bodyshape.units import CM_PER_INCH, from_cm, rename

CHARTS_DIR = PACKAGE_DATA / "size_charts"
GIRTHS = ("chest_cm", "waist_cm", "hip_cm", "neck_cm", "thigh_cm", "calf_cm", "bicep_cm",
          "wrist_cm")
# For a measurement without a measured error (typed in, or not evaluated): a nominal
# standard deviation, cm, used only to rank sizes and find "between sizes", never to report
# a confidence.
NOMINAL_SD_CM = 1.0
BETWEEN_RATIO = 0.5  # runner-up at least half as likely as the best: "between sizes"
BETWEEN_CM = 1.0  # without likely sizes: runner-up at most this much farther (cm)
MIN_CHANCE = 1e-9  # below this every size is "impossible": fall back to distances
SD_PER_MAE = math.sqrt(math.pi / 2)


class ChartError(ValueError):
    """An unusable size chart; ``str(err)`` is one line naming the file."""


@dataclass(frozen=True)
class SizeRange:
    """One size's body range for one measurement, cm (ease and stretch applied)."""

    low_cm: float
    high_cm: float


@dataclass(frozen=True)
class Size:
    """A row of a chart: its label and body ranges (measurement name -> range)."""

    label: str
    ranges: dict[str, SizeRange]


@dataclass(frozen=True)
class SizeChart:
    """A parsed chart: garment -> its sizes, smallest first; ``source`` names the file."""

    source: str
    garments: dict[str, tuple[Size, ...]]


@dataclass(frozen=True)
class MeasurementFit:
    """How one body measurement fits the recommended size.

    Attributes:
        name: the measurement (``chest_cm``, ...); value_cm: the body's value.
        low_cm, high_cm: the size's body range.
        fit: "tight" (above the range), "good" (inside) or "loose" (below).
        off_cm: how far outside the range (positive: above, negative: below; 0 inside).
        error_cm: the measurement's mean absolute error, None if not known.
    """

    name: str
    value_cm: float
    low_cm: float
    high_cm: float
    fit: str
    off_cm: float
    error_cm: float | None

    def to_dict(self, units: str = "cm") -> dict:
        def r(x):
            return None if x is None else round(from_cm(x, units), 1)

        return {"measurement": rename(self.name, units), "value": r(self.value_cm),
                "range": [r(self.low_cm), r(self.high_cm)], "fit": self.fit,
                "off": r(self.off_cm), "error": r(self.error_cm)}


@dataclass(frozen=True)
class SizeRecommendation:
    """The answer for one garment of a chart.

    Attributes:
        garment, size: the garment type and the recommended size label.
        fits: per chart measurement, how the body fits ``size``.
        between: (smaller, larger) labels when two sizes are close, else None.
        confidence: the chance (0-1) that ``size`` is the right one given the measured
            errors, or None when an error is unknown or the body is outside the chart.
        outside_chart: a measurement lies beyond every size of the chart.
    """

    garment: str
    size: str
    fits: tuple[MeasurementFit, ...]
    between: tuple[str, str] | None
    confidence: float | None
    outside_chart: bool

    @property
    def note(self) -> str:
        """One line for people, e.g. ``M (between M and L): chest good, waist tight; 71 %
        sure``."""
        text = self.size + (f" (between {self.between[0]} and {self.between[1]})"
                            if self.between else "")
        text += ": " + ", ".join(f"{f.name.removesuffix('_cm').replace('_', ' ')} {f.fit}"
                                 for f in self.fits)
        if self.outside_chart:
            text += "; outside the chart's sizes"
        elif self.confidence is not None:
            text += f"; {100 * self.confidence:.0f} % sure"
        return text

    def to_dict(self, units: str = "cm") -> dict:
        return {"garment": self.garment, "size": self.size,
                "between": list(self.between) if self.between else None,
                "confidence": None if self.confidence is None else round(self.confidence, 3),
                "outside_chart": self.outside_chart, "note": self.note,
                "fits": [f.to_dict(units) for f in self.fits]}


def shipped_charts() -> dict[str, Path]:
    """The example charts shipped in the package: name (file stem) -> path."""
    return {p.stem: p for p in sorted(CHARTS_DIR.glob("*.csv"))}


def resolve_chart(name_or_path: str | os.PathLike) -> Path:
    """A chart file: an existing path, or the name of a shipped chart; else ChartError."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = shipped_charts()
    if str(name_or_path) in shipped:
        return shipped[str(name_or_path)]
    raise ChartError(f"{name_or_path}: no such size chart file or shipped chart (shipped: "
                     f"{', '.join(shipped)})")


def _number(text: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ChartError(f"{where}: {text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise ChartError(f"{where}: {text!r} is not a length")
    return value


def _cell(text: str, where: str) -> tuple[float, float] | float | None:
    """A cell: ``MIN-MAX`` -> (min, max); ``VALUE`` -> value (a target); empty -> None."""
    text = text.strip()
    if not text:
        return None
    if "-" in text.lstrip("-"):
        lo, hi = (_number(x, where) for x in text.split("-", 1))
        if hi < lo:
            raise ChartError(f"{where}: range {text!r} runs backwards")
        return lo, hi
    return _number(text, where)


def _column(header: str) -> tuple[str, float] | None:
    """A measurement column -> (measurement name in cm, factor to cm); None otherwise."""
    for suffix, factor in (("_cm", 1.0), ("_in", CM_PER_INCH)):
        if header.endswith(suffix) and header[: -len(suffix)] + "_cm" in MEASUREMENT_NAMES:
            return header[: -len(suffix)] + "_cm", factor
    return None


def _ranges(cells: list, where: list[str]) -> list[tuple[float, float] | None]:
    """One measurement's cells of one garment -> ranges (targets reach halfway to the
    neighbours' centres)."""
    centres = [None if c is None else (sum(c) / 2 if isinstance(c, tuple) else c) for c in cells]
    known = [(i, c) for i, c in enumerate(centres) if c is not None]
    for (_, a), (j, b) in zip(known, known[1:]):
        if b < a:
            raise ChartError(f"{where[j]}: sizes must be listed from the smallest to the largest")
    out: list[tuple[float, float] | None] = [None] * len(cells)
    for k, (i, c) in enumerate(known):
        if isinstance(cells[i], tuple):
            out[i] = cells[i]
            continue
        if len(known) < 2:
            raise ChartError(f"{where[i]}: a lone target needs a neighbouring size (or give "
                             "a range MIN-MAX)")
        prev_c = known[k - 1][1] if k > 0 else c - (known[k + 1][1] - c)
        next_c = known[k + 1][1] if k + 1 < len(known) else c + (c - known[k - 1][1])
        out[i] = ((prev_c + c) / 2, (c + next_c) / 2)
    return out


def load_chart(path: str | os.PathLike) -> SizeChart:
    """Parse a chart CSV (module docs), given by path or as the name of a shipped chart
    (``"womens_tops"``); ChartError with the file and line on any problem."""
    path = resolve_chart(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ChartError(f"{path}: cannot read the size chart ({exc})") from None
    return parse_chart(text, str(path))


def parse_chart(text: str, source: str) -> SizeChart:
    """Parse a chart's CSV text; ``source`` names it in messages (ChartError)."""
    path = source
    lines = text.splitlines()
    numbered = [(n, ln) for n, ln in enumerate(lines, 1) if ln.strip() and not ln.lstrip()
                .startswith("#")]
    if not numbered:
        raise ChartError(f"{path}: the size chart is empty")
    try:
        rows = list(csv.reader([ln for _, ln in numbered]))
    except csv.Error as exc:
        raise ChartError(f"{path}: not a CSV file ({exc})") from None
    if len(rows) < 2:
        raise ChartError(f"{path}: the size chart lists no sizes")
    header = [h.strip() for h in rows[0]]
    columns = {h: _column(h) for h in header if _column(h)}
    unknown = set(header) - set(columns) - {"garment", "size", "ease_cm", "ease_in",
                                            "stretch_pct"}
    if "garment" not in header or "size" not in header or not columns or unknown:
        raise ChartError(f"{path}: header needs garment, size and measurement columns (e.g. "
                         "chest_cm); " + (f"unknown column(s) {', '.join(sorted(unknown))}"
                                          if unknown else f"got {','.join(header)}"))
    by_garment: dict[str, list[tuple[str, dict]]] = {}
    for (n, _), row in zip(numbered[1:], rows[1:]):
        if len(row) != len(header):
            raise ChartError(f"{path}:{n}: {len(row)} cells for {len(header)} columns")
        cell = dict(zip(header, (c.strip() for c in row)))
        if not cell["garment"] or not cell["size"]:
            raise ChartError(f"{path}:{n}: garment and size must not be empty")
        by_garment.setdefault(cell["garment"], []).append((f"{path}:{n}", cell))
    garments = {}
    for garment, entries in by_garment.items():
        per_size: list[dict[str, SizeRange]] = [{} for _ in entries]
        for header_name, (name, factor) in columns.items():
            where = [w for w, _ in entries]
            cells = [_cell(c[header_name], w) for w, c in entries]
            for i, rng in enumerate(_ranges(cells, where)):
                if rng is None:
                    continue
                w, c = entries[i]
                ease = (_number(c["ease_cm"], w) if c.get("ease_cm") else 0.0) + \
                    (_number(c["ease_in"], w) * CM_PER_INCH if c.get("ease_in") else 0.0)
                stretch = _number(c["stretch_pct"], w) if c.get("stretch_pct") else 0.0
                lo, hi = rng[0] * factor, rng[1] * factor
                if name in GIRTHS:
                    lo, hi = lo - ease, (hi - ease) * (1 + stretch / 100)
                per_size[i][name] = SizeRange(lo, hi)
        labels = [c["size"] for _, c in entries]
        if len(set(labels)) != len(labels):
            raise ChartError(f"{path}: garment {garment!r} lists a size twice")
        garments[garment] = tuple(Size(lbl, r) for lbl, r in zip(labels, per_size))
    return SizeChart(str(path), garments)


def _chance(x: float, rng: SizeRange, sd: float) -> float:
    return float(ndtr((rng.high_cm - x) / sd) - ndtr((rng.low_cm - x) / sd))


def _off(x: float, rng: SizeRange) -> float:
    return x - rng.high_cm if x > rng.high_cm else x - rng.low_cm if x < rng.low_cm else 0.0


def _recommend_one(garment: str, sizes: tuple[Size, ...], values: dict[str, float],
                   errors: dict[str, float]) -> SizeRecommendation:
    names = [n for n in MEASUREMENT_NAMES if any(n in s.ranges for s in sizes)]
    missing = [n for n in names if not math.isfinite(values.get(n, math.nan))]
    if missing:
        raise ValueError(f"the {garment} chart needs {', '.join(missing)}, which the "
                         "measurements lack (or is not a number)")
    sd = {n: errors[n] * SD_PER_MAE if errors.get(n) else NOMINAL_SD_CM for n in names}
    chances, distances = [], []
    for s in sizes:
        used = [n for n in names if n in s.ranges]
        chances.append(math.prod(_chance(values[n], s.ranges[n], sd[n]) for n in used))
        distances.append(sum(abs(_off(values[n], s.ranges[n])) for n in used))
    order = list(range(len(sizes)))
    likely = max(chances) > MIN_CHANCE
    if likely:
        order.sort(key=lambda i: (-chances[i], distances[i]))
    else:
        order.sort(key=lambda i: (distances[i], -chances[i]))
    best = order[0]
    between = None
    if len(order) > 1:
        second = order[1]
        close = (chances[second] >= BETWEEN_RATIO * chances[best] if likely
                 else distances[second] - distances[best] <= BETWEEN_CM)
        if close:
            lo_i, hi_i = sorted((best, second))
            between = (sizes[lo_i].label, sizes[hi_i].label)
    outside = any(values[n] > max(s.ranges[n].high_cm for s in sizes if n in s.ranges)
                  or values[n] < min(s.ranges[n].low_cm for s in sizes if n in s.ranges)
                  for n in names)
    known = all(errors.get(n) for n in names)
    confidence = (chances[best] / sum(chances)) if likely and known and not outside else None
    fits = []
    for n in names:
        rng = sizes[best].ranges.get(n)
        if rng is None:
            continue
        off = _off(values[n], rng)
        fits.append(MeasurementFit(n, values[n], rng.low_cm, rng.high_cm,
                                   "tight" if off > 0 else "loose" if off < 0 else "good",
                                   off, errors.get(n)))
    return SizeRecommendation(garment, sizes[best].label, tuple(fits), between, confidence,
                              outside)


def recommend(measurements_cm: dict[str, float], chart: SizeChart,
              errors_cm: dict[str, float] | None = None,
              garment: str | None = None) -> tuple[SizeRecommendation, ...]:
    """The best size of each garment of ``chart`` (or of ``garment`` only).

    Args:
        measurements_cm: measurement name (``chest_cm``, ...) -> body value, cm.
        chart: a parsed chart (:func:`load_chart`).
        errors_cm: measurement name -> mean absolute error, cm (``Prediction.errors_cm``);
            missing names get ``NOMINAL_SD_CM`` and no confidence.
        garment: one garment of the chart, or None for all.
    Raises:
        ValueError: an unknown garment, or a measurement the chart needs is missing.
    """
    if garment is not None and garment not in chart.garments:
        raise ValueError(f"{chart.source} has no garment {garment!r} (it has "
                         f"{', '.join(chart.garments)})")
    values = {k: float(v) for k, v in measurements_cm.items()}
    return tuple(_recommend_one(g, sizes, values, dict(errors_cm or {}))
                 for g, sizes in chart.garments.items() if garment in (None, g))


def recommend_charts(measurements_cm: dict[str, float], charts: tuple[SizeChart, ...],
                     errors_cm: dict[str, float] | None = None
                     ) -> tuple[SizeRecommendation, ...]:
    """:func:`recommend` over several charts, every garment of each, in order."""
    return tuple(r for chart in charts for r in recommend(measurements_cm, chart, errors_cm))


def _to_cm(values: dict, what: str) -> dict[str, float]:
    out = {}
    for key, value in values.items():
        col = _column(str(key))
        if col is None:
            continue  # other fields (e.g. a shop's own) are ignored
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value) or value < 0:
            raise ValueError(f"{what}: {key} must be a length, got {value!r}")
        out[col[0]] = float(value) * col[1]
    return out


def read_measurements(path: str | os.PathLike) -> tuple[dict[str, float], dict[str, float]]:
    """Body measurements and their errors from a JSON file -> (values cm, errors cm).

    Accepts a prediction's ``measurements.json`` (``{"measurements": {...}, "errors":
    {...}}``, in cm or inches) or a plain object such as ``{"chest_cm": 92, "waist_in":
    30}``. Raises ValueError (one line) for an unreadable file or a non-length value.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot read measurements JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object of measurements")
    body = data.get("measurements", data)
    errors = data.get("errors") or {}
    if not isinstance(body, dict) or not isinstance(errors, dict):
        raise ValueError(f"{path}: 'measurements' and 'errors' must be JSON objects")
    values = _to_cm(body, str(path))
    if not values:
        raise ValueError(f"{path}: no measurements found (names like chest_cm or chest_in)")
    return values, _to_cm(errors, str(path))
