"""Part-coloured silhouettes (the article's colour segmentation map): a mask plus 2D body
keypoints -> a body-part label per pixel.

One routine, :func:`part_labels`, used by both sides: synthesis stores each view's canvas
keypoints (regressed from the posed body, ``body.keypoints``, with MediaPipe's measured
noise) and the dataset labels the (augmented) mask with them; prediction labels the
calibrated photo mask with MediaPipe Pose's landmarks (:func:`landmark_keypoints`). Both go
through :func:`keypoints_on_canvas` with the view's calibration.

Rule: every foreground pixel takes the part of the nearest body primitive, measured in
canvas pixels: line segments for the head and the limbs (lower arms extended over the hand,
lower legs over the foot) and the torso quadrilateral (shoulders and hips), whose distance
is 0 inside. A limb whose segment passes within ``LIMB_PRIORITY_PX`` of a pixel wins over the
torso there, so arms held in front of the trunk keep their label. Primitives with a missing
keypoint (NaN, e.g. a landmark MediaPipe could not see) are left out.

Labels (``PART_NAMES``, uint8): 0 background, 1 head, 2 torso, 3/4 upper arm left/right,
5/6 lower arm and hand, 7/8 upper leg, 9/10 lower leg and foot (subject's left and right).
"""

from __future__ import annotations

import numpy as np
import torch

from bodyshape.body.keypoints import KEYPOINT_NAMES, MEDIAPIPE_INDEX

PART_NAMES = ("background", "head", "torso", "upper_arm_l", "upper_arm_r", "lower_arm_l",
              "lower_arm_r", "upper_leg_l", "upper_leg_r", "lower_leg_l", "lower_leg_r")
#: RGB colour of each part in pictures (background white).
PART_COLOURS = np.array([
    (255, 255, 255), (230, 159, 0), (86, 180, 233), (0, 158, 115), (0, 114, 178),
    (240, 228, 66), (213, 94, 0), (204, 121, 167), (120, 94, 240), (153, 153, 153),
    (60, 60, 60)], dtype=np.uint8)
#: Network input channels of a part-aware network (``part_channels``): left and right
#: merged, since MediaPipe swaps them in a quarter to a third of side views (docs/SYNTH.md).
PART_GROUPS = ("head", "torso", "upper_arm", "lower_arm", "upper_leg", "lower_leg")
_GROUP_OF_LABEL = torch.tensor([-1, 0, 1, 2, 2, 3, 3, 4, 4, 5, 5])
LIMB_PRIORITY_PX = 1.5
MIN_VISIBILITY = 0.5
_K = {name: k for k, name in enumerate(KEYPOINT_NAMES)}
# (part, start keypoint, end keypoint, extension of the segment beyond its end)
_LIMBS = (
    (3, "shoulder_l", "elbow_l", 0.0), (4, "shoulder_r", "elbow_r", 0.0),
    (5, "elbow_l", "wrist_l", 0.45), (6, "elbow_r", "wrist_r", 0.45),
    (7, "hip_l", "knee_l", 0.0), (8, "hip_r", "knee_r", 0.0),
    (9, "knee_l", "ankle_l", 0.25), (10, "knee_r", "ankle_r", 0.25),
)


def landmark_keypoints(landmarks: np.ndarray, min_visibility: float = MIN_VISIBILITY
                       ) -> np.ndarray:
    """MediaPipe Pose landmarks (33, 4) ``(x_px, y_px, z, visibility)`` -> (K, 2) frame
    pixels in ``KEYPOINT_NAMES`` order, NaN where the landmark is less visible than
    ``min_visibility``."""
    lm = np.asarray(landmarks, dtype=np.float64)[list(MEDIAPIPE_INDEX)]
    out = lm[:, :2].copy()
    out[lm[:, 3] < min_visibility] = np.nan
    return out


def keypoints_on_canvas(keypoints: np.ndarray, calibrated) -> np.ndarray:
    """(..., K, 2) frame pixels -> canvas pixels by a view's calibration (mirror included).
    Mirroring swaps image sides, not the subject's: labels stay the subject's left/right."""
    return calibrated.to_canvas(keypoints)


def parts_from_landmarks(calibrated, landmarks: np.ndarray) -> np.ndarray:
    """Predict's path: the part labels of a calibrated photo mask from MediaPipe Pose's
    (33, 4) frame landmarks -> (H, W) uint8 (``part_labels``)."""
    kp = keypoints_on_canvas(landmark_keypoints(landmarks), calibrated)
    return part_labels(calibrated.image, kp)


def _segment_distances(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distances (N, S) of points (N, 2) to the segments a[s]-b[s] (S, 2), all at once.
    Written per coordinate: (N, S) arrays only, 3x faster than (N, S, 2) ones with a norm."""
    dx, dy = (b - a).T
    rx = p[:, :1] - a[:, 0]
    ry = p[:, 1:] - a[:, 1]
    t = np.clip((rx * dx + ry * dy) / np.maximum(dx * dx + dy * dy, 1e-12), 0.0, 1.0)
    ex, ey = rx - t * dx, ry - t * dy
    return np.sqrt(ex * ex + ey * ey)


def _inside(p: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Whether points (N, 2) lie inside a simple polygon (M, 2) (even-odd ray casting)."""
    inside = np.zeros(len(p), dtype=bool)
    for i in range(len(poly)):
        a, b = poly[i], poly[(i + 1) % len(poly)]
        crosses = (a[1] > p[:, 1]) != (b[1] > p[:, 1])
        dy = b[1] - a[1] if b[1] != a[1] else 1e-12
        inside ^= crosses & (p[:, 0] < a[0] + (p[:, 1] - a[1]) * (b[0] - a[0]) / dy)
    return inside


def part_labels(mask: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
    """Label every foreground pixel of a canvas mask with its body part (module docs).

    Args:
        mask: (H, W) float in [0, 1] or bool; foreground is >= 0.5.
        keypoints: (K, 2) canvas pixels (x, y; pixel (i, j) has its centre at (j + 0.5,
            i + 0.5)) in ``KEYPOINT_NAMES`` order; NaN rows are missing.

    Returns:
        (H, W) uint8 labels of ``PART_NAMES``; all background where no primitive is known.
    """
    m = np.asarray(mask) >= 0.5
    kp = np.asarray(keypoints, dtype=np.float64)
    if kp.shape != (len(KEYPOINT_NAMES), 2):
        raise ValueError(f"keypoints must be ({len(KEYPOINT_NAMES)}, 2), got {kp.shape}")
    out = np.zeros(m.shape, np.uint8)
    ys, xs = np.nonzero(m)
    if len(ys) == 0:
        return out
    p = np.stack([xs + 0.5, ys + 0.5], axis=1)
    known = np.isfinite(kp).all(axis=1)
    # Segments: limbs first (ties go to the earlier primitive), then the torso's edges and
    # the head; each with its part and whether it is a limb (limbs win near the torso).
    parts, starts, ends, limb = [], [], [], []
    for part, a, b, ext in _LIMBS:
        if known[_K[a]] and known[_K[b]]:
            parts.append(part), limb.append(True)
            starts.append(kp[_K[a]])
            ends.append(kp[_K[b]] + ext * (kp[_K[b]] - kp[_K[a]]))
    corners = [_K[c] for c in ("shoulder_l", "shoulder_r", "hip_r", "hip_l")]
    torso = None
    if known[corners].all():
        torso = kp[corners]
        for i in range(4):
            parts.append(2), limb.append(False)
            starts.append(torso[i]), ends.append(torso[(i + 1) % 4])
        neck = torso[:2].mean(axis=0)
        ears = [kp[_K[e]] for e in ("ear_l", "ear_r", "nose") if known[_K[e]]]
        if ears:
            centre = np.mean(ears, axis=0)
            parts.append(1), limb.append(False)
            starts.append(neck + 0.55 * (centre - neck))
            ends.append(centre + 0.6 * (centre - neck))
    if not parts:
        return out
    d = _segment_distances(p, np.array(starts), np.array(ends))
    d[:, np.array(limb)] = np.maximum(d[:, np.array(limb)] - LIMB_PRIORITY_PX, 0.0)
    if torso is not None:  # inside the torso quadrilateral its distance is 0
        is_torso = np.array(parts) == 2
        d[np.ix_(_inside(p, torso), is_torso)] = 0.0
    out[ys, xs] = np.asarray(parts, np.uint8)[np.argmin(d, axis=1)]
    return out


def part_channels(mask: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
    """The one routine from a canvas mask (and its part labels) to a part-aware network's
    input, used by training and prediction alike.

    Args:
        mask: (B, 1, H, W) float canvas in [0, 1] (the calibrated, possibly augmented mask).
        labels: (B, H, W) integer ``PART_NAMES`` labels of that mask (``part_labels``), or
            None where the parts are unknown (a mask input without landmarks).

    Returns:
        (B, 1 + len(PART_GROUPS), H, W): the mask, then per ``PART_GROUPS`` entry the mask
        where the label belongs to the group (all zero when ``labels`` is None).
    """
    if mask.ndim != 4 or mask.shape[1] != 1:
        raise ValueError(f"mask must be (B, 1, H, W), got {tuple(mask.shape)}")
    b, _, h, w = mask.shape
    if labels is None:
        return torch.cat([mask, mask.new_zeros(b, len(PART_GROUPS), h, w)], dim=1)
    if labels.shape != (b, h, w):
        raise ValueError(f"labels must be {(b, h, w)}, got {tuple(labels.shape)}")
    group = _GROUP_OF_LABEL.to(labels.device)[labels.long()]  # (B, H, W), -1 background
    onehot = group[:, None] == torch.arange(len(PART_GROUPS), device=labels.device)[:, None,
                                                                                    None]
    return torch.cat([mask, mask * onehot.to(mask.dtype)], dim=1)


def colour_labels(labels: np.ndarray) -> np.ndarray:
    """(H, W) labels -> (H, W, 3) uint8 RGB picture (``PART_COLOURS``)."""
    return PART_COLOURS[labels]
