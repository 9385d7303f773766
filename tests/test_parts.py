"""Part labels: the one routine from a mask plus keypoints to body parts, shared by synthesis
and prediction."""

from __future__ import annotations

import numpy as np
import pytest

from bodyshape.body.keypoints import KEYPOINT_NAMES, MEDIAPIPE_INDEX, PAIRS
from bodyshape.calibrate import calibrate
from bodyshape.parts import (PART_NAMES, landmark_keypoints, part_labels,
                             parts_from_landmarks)
from bodyshape.synth.generate import SynthSpec, make_sample_frames

K = {n: i for i, n in enumerate(KEYPOINT_NAMES)}
P = {n: i for i, n in enumerate(PART_NAMES)}


def stick_figure() -> tuple[np.ndarray, np.ndarray]:
    """A 64 x 64 canvas with a box torso, straight limbs and a round head, and its keypoints
    (subject's left on image right, as a front view)."""
    kp = np.full((len(KEYPOINT_NAMES), 2), np.nan)
    pts = {"nose": (32, 8), "ear_l": (35, 8), "ear_r": (29, 8),
           "shoulder_l": (38, 16), "shoulder_r": (26, 16), "elbow_l": (48, 22),
           "elbow_r": (16, 22), "wrist_l": (56, 28), "wrist_r": (8, 28),
           "hip_l": (36, 36), "hip_r": (28, 36), "knee_l": (38, 47), "knee_r": (26, 47),
           "ankle_l": (39, 58), "ankle_r": (25, 58)}
    for name, xy in pts.items():
        kp[K[name]] = xy
    import cv2
    m = np.zeros((64, 64), np.uint8)
    cv2.rectangle(m, (26, 15), (38, 37), 1, -1)
    cv2.circle(m, (32, 8), 5, 1, -1)
    for a, b in (("shoulder_l", "elbow_l"), ("elbow_l", "wrist_l"), ("shoulder_r", "elbow_r"),
                 ("elbow_r", "wrist_r"), ("hip_l", "knee_l"), ("knee_l", "ankle_l"),
                 ("hip_r", "knee_r"), ("knee_r", "ankle_r")):
        cv2.line(m, pts[a], pts[b], 1, 3)
    return m.astype(np.float32), kp


def label_at(labels, xy) -> str:
    return PART_NAMES[labels[int(xy[1]), int(xy[0])]]


def test_stick_figure_gets_its_parts():
    mask, kp = stick_figure()
    lab = part_labels(mask, kp)
    assert (lab[mask < 0.5] == 0).all() and (lab[mask >= 0.5] > 0).all()
    assert label_at(lab, (32, 6)) == "head"
    assert label_at(lab, (32, 26)) == "torso"
    assert label_at(lab, (43, 19)) == "upper_arm_l" and label_at(lab, (21, 19)) == "upper_arm_r"
    assert label_at(lab, (52, 25)) == "lower_arm_l" and label_at(lab, (12, 25)) == "lower_arm_r"
    assert label_at(lab, (37, 42)) == "upper_leg_l" and label_at(lab, (27, 42)) == "upper_leg_r"
    assert label_at(lab, (38, 53)) == "lower_leg_l" and label_at(lab, (26, 53)) == "lower_leg_r"


def test_missing_keypoints_drop_their_parts_only():
    mask, kp = stick_figure()
    kp[K["wrist_l"]] = np.nan
    lab = part_labels(mask, kp)
    assert P["lower_arm_l"] not in lab and P["lower_arm_r"] in lab
    assert (part_labels(mask, np.full_like(kp, np.nan)) == 0).all()
    with pytest.raises(ValueError, match="keypoints must be"):
        part_labels(mask, kp[:3])


def test_landmark_keypoints_pick_visible_mediapipe_points():
    lm = np.zeros((33, 4))
    lm[:, 0], lm[:, 1], lm[:, 3] = np.arange(33), 100 + np.arange(33), 0.9
    lm[15, 3] = 0.1  # left wrist hidden
    kp = landmark_keypoints(lm)
    assert kp.shape == (len(KEYPOINT_NAMES), 2)
    np.testing.assert_array_equal(kp[K["shoulder_l"]], [11, 111])
    assert np.isnan(kp[K["wrist_l"]]).all()
    assert all(KEYPOINT_NAMES[a].endswith("_l") and KEYPOINT_NAMES[b].endswith("_r")
               for a, b in PAIRS)


@pytest.mark.parametrize("index", [0, 1])
def test_predict_and_synth_make_identical_inputs(body, index):
    """From the same full-frame mask and keypoints, prediction's path (calibrate, MediaPipe
    landmarks -> canvas keypoints -> labels) gives the network input and the part labels
    that synthesis stored and the dataset computes."""
    from bodyshape.dataset.shard_format import shard_arrays

    sf = make_sample_frames(body, index, 21, SynthSpec())
    s = sf.sample
    for v, (frame, canvas, mirror) in enumerate(((sf.front, s.front, False),
                                                 (sf.side, s.side, s.side_mirrored))):
        cal = calibrate(frame, SynthSpec().calibration, mirror=mirror)  # predict's call
        np.testing.assert_array_equal(cal.image, canvas)
        lm = np.zeros((33, 4))
        lm[list(MEDIAPIPE_INDEX), :2] = cal.to_frame(s.keypoints[v].astype(np.float64))
        lm[:, 3] = 1.0
        got = parts_from_landmarks(cal, lm)
        stored = shard_arrays([s])["keypoints"][0, v]
        want = part_labels(shard_arrays([s], "uint8")["masks"][0, v] / 255.0, stored)
        assert (got != want).sum() <= 2  # float32 keypoints in the shard: ties may differ
        assert len(np.unique(want)) >= 8
