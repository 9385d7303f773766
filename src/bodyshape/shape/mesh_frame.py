"""Orientation and units of an imported body mesh (see
:func:`bodyshape.shape.meshio.load_body_mesh`).

Axes: with ``up="auto"`` the axis of largest extent is up (people are taller than their A-pose
arm span); the sign puts the wider end (arms and shoulders in an A-pose) at the top; the axis
of second-largest extent becomes X (the arm span), and Y completes a right-handed frame. The
mesh is only rotated (never mirrored or translated). Whether the subject faces -Y or +Y is NOT
decided here: it is resolved later by landmarks / registration. A T-pose (arm span about the
body height) or a pose without a clearly wider upper body is refused in auto mode: pass ``up``.

Units: "m", "cm" or "mm", given or (``units="auto"``) decided from the body height.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bodyshape.shape.mesh_clean import input_error

UNIT_SCALES = {"m": 1.0, "cm": 0.01, "mm": 0.001}
# Body height (extent along up, meters) accepted after unit conversion.
MIN_HEIGHT_M, MAX_HEIGHT_M = 0.4, 2.6
# Heights (meters) for which ``units="auto"`` trusts a unit: the raw extent must lie in this
# range times 1, 100 or 1000. The three ranges are disjoint, and inches or feet fall outside.
AUTO_HEIGHT_RANGE_M = (0.9, 2.3)
# up="auto": the largest extent must exceed the second by this factor, and the horizontal
# extent of the upper 40% of the body must exceed the lower 40%'s by this factor.
AUTO_UP_MIN_RATIO = 1.05
AUTO_SIGN_MIN_RATIO = 1.10

_AXES = "xyz"


def parse_up(up: str) -> tuple[int, int] | None:
    """'auto' -> None; 'z', '+y', '-x', ... -> (axis index, sign)."""
    text = str(up).strip().lower()
    if text == "auto":
        return None
    sign = 1
    if text[:1] in "+-" and len(text) == 2:
        sign = -1 if text[0] == "-" else 1
        text = text[1:]
    if len(text) != 1 or text not in _AXES:
        raise ValueError(f"up must be 'auto' or one of x, y, z, -x, -y, -z; got {up!r}")
    return _AXES.index(text), sign


def axis_name(axis: int, sign: int) -> str:
    return ("+" if sign > 0 else "-") + _AXES[axis]


def auto_up(path: Path, vertices: np.ndarray) -> tuple[int, int, str]:
    extent = vertices.max(axis=0) - vertices.min(axis=0)
    order = np.argsort(-extent, kind="stable")
    up_axis = int(order[0])
    if extent[order[0]] < AUTO_UP_MIN_RATIO * extent[order[1]]:
        raise input_error(
            path,
            f"cannot decide the up axis: extents {_AXES[order[0]]}={extent[order[0]]:.4g} and "
            f"{_AXES[order[1]]}={extent[order[1]]:.4g} are too close (T-pose?); pass --up",
        )
    t = vertices[:, up_axis]
    lo, height = t.min(), extent[up_axis]
    horizontal = [a for a in range(3) if a != up_axis]

    def width(mask: np.ndarray) -> float:
        part = vertices[mask][:, horizontal]
        return float((part.max(axis=0) - part.min(axis=0)).max()) if len(part) else 0.0

    upper = width(t >= lo + 0.6 * height)  # the upper 40% in the +axis direction
    lower = width(t <= lo + 0.4 * height)
    if upper >= AUTO_SIGN_MIN_RATIO * lower:
        sign = 1
    elif lower >= AUTO_SIGN_MIN_RATIO * upper:
        sign = -1
    else:
        raise input_error(
            path,
            f"cannot decide which end of the {_AXES[up_axis]} axis is the head (widths of the two "
            f"ends {upper:.4g} and {lower:.4g} are too close; not an A-pose?); pass --up",
        )
    why = f"widest at the {axis_name(up_axis, sign)} end: {max(upper, lower):.4g} vs {min(upper, lower):.4g}"
    return up_axis, sign, why


def rotation(vertices: np.ndarray, up_axis: int, up_sign: int) -> np.ndarray:
    """Rotation R (rows = new X, Y, Z in old coordinates): up -> +Z, next-largest extent -> +X."""
    extent = vertices.max(axis=0) - vertices.min(axis=0)
    others = [a for a in range(3) if a != up_axis]
    x_axis = max(others, key=lambda a: (extent[a], -a))  # ties: the lower axis (x before y)
    z = np.zeros(3)
    z[up_axis] = up_sign
    x = np.zeros(3)
    x[x_axis] = 1.0
    y = np.cross(z, x)
    return np.stack([x, y, z])


def describe_rotation(rot: np.ndarray) -> str:
    parts = []
    for new, row in zip("XYZ", rot):
        axis = int(np.argmax(np.abs(row)))
        parts.append(f"{axis_name(axis, int(np.sign(row[axis])))}->+{new}")
    matrix = "[" + ", ".join("[" + ", ".join(f"{v:g}" for v in row) + "]" for row in rot + 0.0) + "]"
    return ", ".join(parts) + f" (new = R @ old, R = {matrix})"


def decide_units(path: Path, units: str, height_raw: float) -> tuple[float, str]:
    if units != "auto":
        return UNIT_SCALES[units], f"units: {units} (given), height {height_raw:.4g} {units}"
    lo, hi = AUTO_HEIGHT_RANGE_M
    for name, scale in UNIT_SCALES.items():
        if lo <= height_raw * scale <= hi:
            return scale, f"units: {name} (auto, height {height_raw:.4g} {name})"
    raise input_error(
        path,
        f"cannot decide the units from the body height {height_raw:.4g} (expected about "
        f"{lo:g}-{hi:g} m, {100 * lo:g}-{100 * hi:g} cm or {1000 * lo:g}-{1000 * hi:g} mm); pass --units",
    )


# Candidate up axes of ``candidate_rotations``: every axis whose extent is at least this
# fraction of the largest (a T-pose's arm span is about its height; the depth of a standing
# body is well below half of it).
CANDIDATE_EXTENT_RATIO = 0.7


def candidate_rotations(vertices: np.ndarray, up: tuple[int, int] | None = None
                        ) -> tuple[np.ndarray, tuple[str, ...]]:
    """Orientations a pose-aware fit tries: up axis, its sign and the facing.

    Args:
        vertices: (N, 3) the mesh in its file's axes.
        up: (axis, sign) if known, else every axis whose extent is at least
            ``CANDIDATE_EXTENT_RATIO`` of the largest, with both signs.
    Returns:
        ((C, 3, 3) rotations ``R`` (``R @ p`` stands Z up), C labels such as
        "up +y, facing -Y"), each up direction with both facings.
    """
    extent = vertices.max(axis=0) - vertices.min(axis=0)
    if up is None:
        ups = [(a, s) for a in range(3) if extent[a] >= CANDIDATE_EXTENT_RATIO * extent.max()
               for s in (1, -1)]
    else:
        ups = [up]
    rots, labels = [], []
    turn = np.diag([-1.0, -1.0, 1.0])  # half a turn about Z: the other facing
    for axis, sign in ups:
        r = rotation(vertices, axis, sign)
        for facing, t in (("-Y", np.eye(3)), ("+Y", turn)):
            rots.append(t @ r)
            labels.append(f"up {axis_name(axis, sign)}, facing {facing}")
    return np.stack(rots), tuple(labels)
