"""Body keypoints as MediaPipe Pose places them, regressed from template vertices.

Predict labels a silhouette's body parts from MediaPipe Pose's landmarks; synthesis must
label its silhouettes from the same kind of points. A keypoint here is a fixed convex
combination of template vertices (``(K, V)`` weights, like the rig's joint regressor) fitted
so that, projected into a photo, it lands where MediaPipe puts its landmark
(``benchmarks/bench_segmentation.py --write-keypoints`` renders photos of synthetic bodies,
runs MediaPipe and fits the weights by non-negative least squares; its held-out error is
stored as ``noise_px``, the keypoint noise synthesis adds). Positions are computed by the one
torch kinematics (``kinematics.regress_joints``).

Keypoints (``KEYPOINT_NAMES``; MediaPipe index in ``MEDIAPIPE_INDEX``; subject's left):
nose, ears, shoulders, elbows, wrists, hips, knees and ankles.

Data file ``body/data/keypoints.npz``: ``names`` (K,), ``index``/``value`` (K, M) sparse
rows of the weights (padded with weight 0), ``noise_px`` (K,) float32 canvas pixels of the
128-px canvas, ``swap_rate`` (2, n_pairs) float32: how often MediaPipe swapped each
left/right pair (``PAIRS``) in front and side views, ``n_vertices``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np

KEYPOINT_NAMES = (
    "nose", "ear_l", "ear_r", "shoulder_l", "shoulder_r", "elbow_l", "elbow_r",
    "wrist_l", "wrist_r", "hip_l", "hip_r", "knee_l", "knee_r", "ankle_l", "ankle_r",
)
#: MediaPipe Pose landmark index of each keypoint (its "left" is the subject's left).
MEDIAPIPE_INDEX = (0, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28)
#: (left, right) keypoint index pairs, in ``KEYPOINT_NAMES``.
PAIRS = tuple((KEYPOINT_NAMES.index(n), KEYPOINT_NAMES.index(n[:-1] + "r"))
              for n in KEYPOINT_NAMES if n.endswith("_l"))
_RADIUS_M = {"shoulder": 0.08, "elbow": 0.06, "wrist": 0.06, "hip": 0.12, "knee": 0.07,
             "ankle": 0.06}
_MAX_CANDIDATES = 160
_DATA = ("bodyshape.body", "data", "keypoints.npz")


def KEYPOINT_CANDIDATES(body) -> list[np.ndarray]:  # noqa: N802 (a fixed table, by body)
    """Template vertex indices each keypoint may draw on: near its rig joint (nose: the
    front of the head; ears: its sides), at most ``_MAX_CANDIDATES`` evenly strided."""
    v = body.template.vertices.astype(np.float64)
    joints = body.joints(v)
    names = body.rig.joint_names
    head = np.argmax(body.rig.weights, axis=1) == names.index("head")
    out = []
    for name in KEYPOINT_NAMES:
        if name == "nose":
            sel = head & (v[:, 1] < v[head, 1].min() + 0.03)
        elif name.startswith("ear"):
            sign = 1.0 if name.endswith("_l") else -1.0
            x = sign * v[:, 0]
            sel = head & (x > 0.8 * x[head].max())
        else:
            d = np.linalg.norm(v - joints[names.index(name)], axis=1)
            sel = d < _RADIUS_M[name.split("_")[0]]
        idx = np.flatnonzero(sel)
        step = max(1, int(np.ceil(len(idx) / _MAX_CANDIDATES)))
        out.append(idx[::step])
    return out


def save_keypoint_regressor(weights: np.ndarray, noise_px: np.ndarray, swap_rate: np.ndarray,
                            path: str | Path | None = None) -> Path:
    """Write (K, V) weights, (K,) noise and (2, n_pairs) left/right swap rates per view
    into ``body/data/keypoints.npz`` (or ``path``)."""
    if path is None:
        path = Path(str(resources.files(_DATA[0]).joinpath(*_DATA[1:])))
    nz = [np.flatnonzero(w > 1e-6) for w in weights]
    m = max(len(i) for i in nz)
    index = np.zeros((len(nz), m), np.int32)
    value = np.zeros((len(nz), m), np.float32)
    for k, i in enumerate(nz):
        index[k, :len(i)] = i
        value[k, :len(i)] = weights[k, i] / weights[k, i].sum()
    np.savez(path, names=np.array(KEYPOINT_NAMES), index=index, value=value,
             noise_px=np.asarray(noise_px, np.float32), n_vertices=weights.shape[1],
             swap_rate=np.asarray(swap_rate, np.float32))
    return Path(path)


def load_keypoint_regressor() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """-> ((K, V) float64 weights, (K,) float64 noise in canvas px, (2, n_pairs) swap rates
    per view) of the shipped file.

    Raises:
        FileNotFoundError: one line, naming the command that writes it.
    """
    ref = resources.files(_DATA[0]).joinpath(*_DATA[1:])
    if not ref.is_file():
        raise FileNotFoundError("body/data/keypoints.npz is missing; run "
                                "benchmarks/bench_segmentation.py --write-keypoints")
    with ref.open("rb") as f:
        d = dict(np.load(f))
    if tuple(str(n) for n in d["names"]) != KEYPOINT_NAMES:
        raise ValueError("keypoints.npz does not match KEYPOINT_NAMES; refit it")
    w = np.zeros((len(KEYPOINT_NAMES), int(d["n_vertices"])))
    rows = np.arange(len(w))[:, None]
    np.add.at(w, (rows, d["index"].astype(np.int64)), d["value"].astype(np.float64))  # pads add 0
    return w, d["noise_px"].astype(np.float64), d["swap_rate"].astype(np.float64)
