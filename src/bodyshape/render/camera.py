"""Pinhole phone cameras: intrinsics, extrinsics, projection and random placement.

World frame: meters, Z up, the subject faces -Y with their left at +X. anny meshes have their
origin near the pelvis (soles at z ~ -0.87), so every height "above the floor" is measured
from an explicit ``floor_z`` (normally the body's min z).

Camera frame: OpenCV (x right, y down, z forward); ``X_cam = R @ X_world + t``. Pixel
coordinates are continuous with pixel (row i, column j) covering ``[j, j+1] x [i, i+1]``, so
the principal point of a centred camera is ``(width / 2, height / 2)``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq

logger = logging.getLogger(__name__)

# Corners closer than this to the camera plane (m) count as "behind the camera"; a phone is
# never held closer than this to anybody.
_NEAR = 0.1
# Multiplicative step (per try) by which sample_camera backs off until the body fits.
_BACKOFF = 1.02
_MAX_BACKOFF_STEPS = 1000


def _readonly(a, shape: tuple[int, ...], name: str) -> np.ndarray:
    arr = np.array(a, dtype=np.float64)  # always a copy, so freezing it is safe
    if arr.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite")
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True, eq=False)
class Camera:
    """A pinhole camera with square pixels and no lens distortion.

    Attributes:
        K: (3, 3) intrinsics, pixels.
        R: (3, 3) world->camera rotation (rows are the camera x, y, z axes in world frame).
        t: (3,) world->camera translation, meters.
        width, height: image size, pixels.
    """

    K: np.ndarray
    R: np.ndarray
    t: np.ndarray
    width: int
    height: int

    def __post_init__(self):
        object.__setattr__(self, "K", _readonly(self.K, (3, 3), "K"))
        object.__setattr__(self, "R", _readonly(self.R, (3, 3), "R"))
        object.__setattr__(self, "t", _readonly(self.t, (3,), "t"))
        object.__setattr__(self, "width", int(self.width))
        object.__setattr__(self, "height", int(self.height))
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"image size must be positive, got {self.width}x{self.height}")
        if not np.allclose(self.R @ self.R.T, np.eye(3), atol=1e-9) or np.linalg.det(self.R) < 0:
            raise ValueError("R must be a proper rotation matrix")

    @property
    def center(self) -> np.ndarray:
        """(3,) camera position in the world, meters."""
        return -self.R.T @ self.t

    @property
    def forward(self) -> np.ndarray:
        """(3,) unit optical axis (camera +z) in the world frame."""
        return self.R[2].copy()

    def scaled(self, s: float) -> Camera:
        """The same camera with an ``s`` times finer pixel grid: intrinsics scaled by ``s``
        about the image corner, image size ``s`` times larger (rounded to whole pixels)."""
        K = self.K.copy()
        K[:2] *= s
        return Camera(K, self.R, self.t, round(self.width * s), round(self.height * s))

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        """World (..., 3) m -> camera frame (..., 3) m."""
        return np.asarray(points, dtype=np.float64) @ self.R.T + self.t

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Project world points.

        Args:
            points: (..., 3) world coordinates, meters.

        Returns:
            pix: (..., 2) pixel coordinates (x right, y down); meaningless where depth <= 0.
            depth: (...,) camera-frame z, meters (positive in front of the camera).
        """
        pc = self.to_camera(points)
        depth = pc[..., 2]
        uvw = pc @ self.K.T
        with np.errstate(divide="ignore", invalid="ignore"):
            pix = uvw[..., :2] / depth[..., None]
        return pix, depth

    def to_dict(self) -> dict:
        """JSON-able description (plain lists and ints)."""
        return {"K": self.K.tolist(), "R": self.R.tolist(), "t": self.t.tolist(),
                "width": self.width, "height": self.height}

    @classmethod
    def from_dict(cls, d: dict) -> Camera:
        """Inverse of ``to_dict``."""
        return cls(K=d["K"], R=d["R"], t=d["t"], width=d["width"], height=d["height"])


def intrinsics(vfov_rad: float, width: int, height: int) -> np.ndarray:
    """(3, 3) intrinsics for a vertical field of view (radians), square pixels, centred
    principal point ``(width / 2, height / 2)``; focal length in pixels."""
    if not 0.0 < vfov_rad < np.pi:
        raise ValueError(f"vfov_rad must be in (0, pi), got {vfov_rad}")
    f = 0.5 * height / np.tan(0.5 * vfov_rad)
    return np.array([[f, 0.0, 0.5 * width], [0.0, f, 0.5 * height], [0.0, 0.0, 1.0]])


def look_at(position, target, up=(0.0, 0.0, 1.0), roll: float = 0.0
            ) -> tuple[np.ndarray, np.ndarray]:
    """World->camera rotation and translation of a camera at ``position`` looking at ``target``.

    Args:
        position: (3,) camera centre, meters.
        target: (3,) point on the optical axis, meters.
        up: (3,) world direction that appears up in the image (before roll).
        roll: radians about the optical axis; positive rotates the image content clockwise.

    Returns:
        R: (3, 3) world->camera rotation; t: (3,) translation, meters.
    """
    position = np.asarray(position, dtype=np.float64)
    fwd = np.asarray(target, dtype=np.float64) - position
    n = np.linalg.norm(fwd)
    if n == 0:
        raise ValueError("position and target coincide")
    fwd /= n
    right = np.cross(fwd, np.asarray(up, dtype=np.float64))
    n = np.linalg.norm(right)
    if n < 1e-9:
        raise ValueError("viewing direction is parallel to up")
    right /= n
    down = np.cross(fwd, right)  # OpenCV y points down in the image
    R0 = np.stack([right, down, fwd])
    c, s = np.cos(roll), np.sin(roll)
    Rz = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    R = Rz @ R0
    return R, -R @ position


@dataclass(frozen=True)
class CameraSpec:
    """Distribution of hand-held phone cameras photographing a standing person.

    Attributes:
        vfov_deg: (lo, hi) vertical field of view, degrees (phone main/portrait lenses).
        aspects: portrait frame shapes as (width, height) ratios; one is drawn uniformly.
        long_side: frame height in pixels; width = round(long_side * w / h), so the defaults
            give 384x512 (3:4) and 288x512 (9:16). The body then spans 230-460 px, at least
            twice the 115 px it gets on the default network canvas, so calibration still
            area-averages 2x2 or more frame pixels per canvas pixel; a 1024 px frame changes
            the stored (thresholded) masks little and is slower (both measured by
            ``benchmarks/bench_synth.py``). The pixel size of the frame is a rendering
            choice only: calibration removes it.
        camera_height: (lo, hi) camera height above ``floor_z``, meters.
        fill: (lo, hi) target fraction of the frame height spanned by the projected body
            bounding box; the distance is solved to hit the draw.
        pitch_deg: the optical axis is aimed at the body-box centre, then tilted by a
            uniform draw in +-pitch_deg (positive tilts up), degrees.
        roll_deg: uniform roll in +-roll_deg about the optical axis, degrees.
        lateral: uniform sideways (x) offset of the camera in +-lateral, meters; the camera
            still aims at the body centre.
        margin: free border kept around the projected body-box corners, as a fraction of the
            frame height.
    """

    vfov_deg: tuple[float, float] = (50.0, 75.0)
    aspects: tuple[tuple[int, int], ...] = ((3, 4), (9, 16))
    long_side: int = 512
    camera_height: tuple[float, float] = (0.8, 1.7)
    fill: tuple[float, float] = (0.45, 0.90)
    pitch_deg: float = 8.0
    roll_deg: float = 3.0
    lateral: float = 0.1
    margin: float = 0.02


def vertex_bounds(vertices: np.ndarray) -> np.ndarray:
    """(2, 3) [min, max] of (V, 3) vertices: the box a camera frames.

    Reduces over a transposed contiguous copy: numpy's ``min(axis=0)`` over a (V, 3) array
    walks it with a stride of 3 and was ~20x slower, a visible share of synthetic sample time."""
    vt = np.ascontiguousarray(vertices.T)
    return np.stack([vt.min(axis=1), vt.max(axis=1)])


def box_corners(bounds: np.ndarray) -> np.ndarray:
    """(8, 3) corners of an axis-aligned box given as (2, 3) [min, max]."""
    b = np.asarray(bounds, dtype=np.float64)
    idx = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)])
    return b[idx, [0, 1, 2]]


def fill_fraction(camera: Camera, bounds: np.ndarray) -> float:
    """Vertical extent of the projected (2, 3) box corners over the frame height."""
    pix, _ = camera.project(box_corners(bounds))
    return float(np.ptp(pix[:, 1]) / camera.height)


def in_frame(camera: Camera, points: np.ndarray, margin_px: float = 0.0) -> bool:
    """True if every (N, 3) world point is in front of the camera and projects inside the
    frame shrunk by ``margin_px`` pixels on each side."""
    pix, depth = camera.project(points)
    if np.any(depth < _NEAR):
        return False
    return bool(np.all(pix[:, 0] >= margin_px) and np.all(pix[:, 0] <= camera.width - margin_px)
                and np.all(pix[:, 1] >= margin_px)
                and np.all(pix[:, 1] <= camera.height - margin_px))


def sample_camera(rng: np.random.Generator, spec: CameraSpec, body_bounds: np.ndarray,
                  floor_z: float) -> Camera:
    """Draw a phone camera in front of the subject (on the -Y side, looking +Y).

    The subject's yaw is the caller's business: rotate the body first, then pass its bounds.
    The camera stands at ``floor_z + camera_height``, ``lateral`` off the body centre in x,
    aimed at the body-box centre with pitch and roll jitter; its distance is solved so the
    projected box spans the drawn ``fill`` of the frame height. If the box corners (plus
    ``margin``) then leave the frame (a wide A-pose in a 9:16 frame, a strong pitch), the
    camera backs off along -Y in 2% steps until they fit, so the realised fill can be below
    the draw but never above it.

    Args:
        rng: the only source of randomness; a fixed number of draws per call.
        spec: the camera distribution.
        body_bounds: (2, 3) [min, max] corners of the (already yawed) body, meters.
        floor_z: world z of the floor, meters (normally ``body_bounds[0, 2]``).

    Returns:
        The camera; every body-box corner lies inside the frame with the margin.
    """
    bounds = _readonly(body_bounds, (2, 3), "body_bounds")
    if np.any(bounds[1] - bounds[0] < 0) or bounds[1, 2] - bounds[0, 2] <= 0:
        raise ValueError(f"body_bounds must be [min, max] with positive height, got {bounds}")
    # Draw everything up front so the stream consumed per call is fixed.
    vfov = np.deg2rad(rng.uniform(*spec.vfov_deg))
    aw, ah = spec.aspects[int(rng.integers(len(spec.aspects)))]
    cam_z = float(floor_z) + rng.uniform(*spec.camera_height)
    fill = rng.uniform(*spec.fill)
    pitch = np.deg2rad(rng.uniform(-spec.pitch_deg, spec.pitch_deg))
    roll = np.deg2rad(rng.uniform(-spec.roll_deg, spec.roll_deg))
    lateral = rng.uniform(-spec.lateral, spec.lateral)

    height = int(spec.long_side)
    width = int(round(spec.long_side * aw / ah))
    K = intrinsics(vfov, width, height)
    centre = bounds.mean(axis=0)
    corners = box_corners(bounds)

    cr, sr = math.cos(roll), math.sin(roll)
    roll_m = np.array([[cr, -sr, 0.0], [sr, cr, 0.0], [0.0, 0.0, 1.0]])

    def pose(gap: float) -> tuple[np.ndarray, np.ndarray]:
        # gap: horizontal distance (m) from the body's front face (min y) to the camera.
        # The same frame as ``look_at(pos, pos + fwd, roll=roll)``, written out with scalar
        # maths because the root finder below calls this ~20 times per camera and numpy's
        # per-call overhead on 3-vectors dominated synthetic-data throughput.
        px, py, pz = centre[0] + lateral, bounds[0, 1] - gap, cam_z
        dx, dy, dz = centre[0] - px, centre[1] - py, centre[2] - pz
        elevation = math.atan2(dz, math.hypot(dx, dy)) + pitch
        heading = math.atan2(dy, dx)
        ce, se = math.cos(elevation), math.sin(elevation)
        ch, sh = math.cos(heading), math.sin(heading)
        fwd = (ce * ch, ce * sh, se)
        right = (sh, -ch, 0.0)  # fwd x up, normalized (|fwd x z| = cos(elevation) > 0)
        down = (fwd[1] * right[2] - fwd[2] * right[1], fwd[2] * right[0] - fwd[0] * right[2],
                fwd[0] * right[1] - fwd[1] * right[0])
        R = roll_m @ np.array([right, down, fwd])
        return R, -R @ np.array([px, py, pz])

    def excess(gap: float) -> float:
        # Projects the corners inline rather than through Camera: Camera's validation would
        # dominate the cost inside the root finder.
        R, t = pose(gap)
        pc = corners @ R.T + t
        if pc[:, 2].min() < _NEAR:
            return 1e6  # corners beside/behind the camera: far too close
        v = K[1, 1] * pc[:, 1] / pc[:, 2] + K[1, 2]
        return float(v.max() - v.min()) / height - fill

    gap_lo, gap_hi = _NEAR, 1e3
    if excess(gap_lo) <= 0 or excess(gap_hi) >= 0:
        raise ValueError(f"cannot reach fill {fill:.3f} for body_bounds {bounds.tolist()}")
    gap = brentq(excess, gap_lo, gap_hi, xtol=1e-6)
    margin_px = spec.margin * height
    for step in range(_MAX_BACKOFF_STEPS):
        cam = Camera(K, *pose(gap), width, height)
        if in_frame(cam, corners, margin_px):
            if step:
                logger.debug("backed off %d steps to fit the body (fill %.3f -> %.3f)",
                             step, fill, fill_fraction(cam, bounds))
            return cam
        gap *= _BACKOFF
    raise RuntimeError("could not fit the body in the frame; check spec.margin and pitch_deg")
