"""Person segmentation and photo checks (bodyshape.segment) on photos rendered by
bodyshape.render.photo. The MediaPipe tests are skipped when mediapipe is not installed; the
pure checks run without it."""

from pathlib import Path

import numpy as np
import pytest

from bodyshape import segment as S
from bodyshape.body import POSE_NAMES, BodyModel
from bodyshape.render.photo import body_regions, photo_camera, render_photo
from bodyshape.render.raster import silhouette

MODEL = Path(__file__).resolve().parents[1] / "src" / "bodyshape" / "data" / "shape_model.npz"
W, H = 480, 640


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


@pytest.fixture(scope="module")
def model():
    return BodyModel.load(MODEL)


@pytest.fixture(scope="module")
def scenes(model):
    """{"front"/"side": (image, exact silhouette)} of the mean body at 480x640."""
    body = model.shape.mean.astype(np.float64)
    out = {}
    for view, verts in (("front", body), ("side", model.turn(body, np.pi / 2))):
        cam = photo_camera(verts, W, H)
        photo = render_photo(model, verts, cam, np.random.default_rng(0))
        out[view] = (photo.image, silhouette(verts, model.faces, cam), photo)
    return out


@pytest.fixture(scope="module")
def segmenter():
    pytest.importorskip("mediapipe")
    with S.Segmenter() as seg:
        yield seg


# ---- renderer --------------------------------------------------------------------------------


def test_render_photo_matches_silhouette(scenes):
    image, sil, photo = scenes["front"]
    assert image.shape == (H, W, 3) and image.dtype == np.uint8
    assert iou(photo.coverage > 0.5, sil) > 0.98
    # The body is darker than the light wall on average, and the background is not flat.
    assert image[sil].mean() < image[~sil].mean()
    assert image[~sil].std() > 1.0


def test_a_quarter_turn_makes_the_body_face_plus_x(model):
    body = model.shape.mean.astype(np.float64)
    turned = model.turn(body, np.pi / 2)
    c = 0.5 * (body.min(0) + body.max(0))
    # The front (-Y) goes to +X, the subject's left (+X) to +Y, heights stay.
    assert np.allclose(turned[:, 0] - c[0], -(body[:, 1] - c[1]), atol=1e-9)
    assert np.allclose(turned[:, 1] - c[1], body[:, 0] - c[0], atol=1e-9)
    assert np.allclose(turned[:, 2], body[:, 2])


def test_body_regions_cover_plausible_areas(model):
    fields = body_regions(model, model.shape.mean.astype(np.float64))
    z = model.shape.mean[:, 2]
    hair, top, shorts = (fields[:, k] > 0 for k in range(3))
    assert hair.any() and top.any() and shorts.any()
    assert z[hair].min() > z[top].max() - 0.05 > z[shorts].max() - 0.3
    assert not (shorts & (z < z.min() + 0.4)).any()  # no shorts on the shins


# ---- segmentation on rendered photos ------------------------------------------------------


@pytest.mark.parametrize("view", ["front", "side"])
def test_segments_one_person_and_view(segmenter, scenes, view):
    image, sil, _ = scenes[view]
    seg = segmenter.segment(image)
    assert seg.mask.shape == (H, W) and seg.mask.dtype == bool
    assert seg.landmarks.shape == (33, 4)
    assert iou(seg.mask, sil) > 0.85
    assert 0.5 < seg.score <= 1.0
    assert seg.other_ratio < S.OTHER_PERSON_RATIO
    S.check_photo(seg, view)  # no error
    assert S.warnings_for(seg, view) == []
    got, conf = S.view_of(seg.landmarks)
    assert got == view and conf > 0.75
    other = "side" if view == "front" else "front"
    with pytest.raises(S.WrongViewError):
        S.check_photo(seg, other)


def test_refine_keeps_or_improves_mask(segmenter, scenes):
    image, sil, _ = scenes["side"]
    assert iou(segmenter.segment(image, refine=True).mask, sil) > 0.9


def test_facing_of_side_view(segmenter, scenes):
    image, _, _ = scenes["side"]
    assert S.facing_of(segmenter.segment(image).landmarks) == "right"
    mirrored = np.ascontiguousarray(image[:, ::-1])
    assert S.facing_of(segmenter.segment(mirrored).landmarks) == "left"


def test_segment_person_uses_default_segmenter(scenes):
    pytest.importorskip("mediapipe")
    image, sil, _ = scenes["front"]
    assert iou(S.segment_person(image).mask, sil) > 0.85
    assert S.default_segmenter() is S.default_segmenter()


def test_blank_image_has_no_person(segmenter):
    seg = segmenter.segment(np.full((H, W, 3), (200, 190, 180), dtype=np.uint8))
    assert seg.landmarks is None and not seg.mask.any()
    with pytest.raises(S.NoPersonError, match="no person"):
        S.check_photo(seg, "front")
    assert S.warnings_for(seg, "front") == []


def test_two_people_side_by_side(segmenter, scenes):
    image, _, _ = scenes["front"]
    seg = segmenter.segment(np.hstack([image, image]))
    with pytest.raises(S.MultiplePeopleError, match="more than one person"):
        S.check_photo(seg, "front")


def test_two_bodies_in_one_render(segmenter, model):
    body = model.shape.mean.astype(np.float64)
    two = np.stack([body - [0.6, 0.0, 0.0], body + [0.6, 0.0, 0.0]])
    cam = photo_camera(two, H, W)  # landscape
    image = render_photo(model, two, cam, np.random.default_rng(1)).image
    with pytest.raises(S.MultiplePeopleError):
        S.check_photo(segmenter.segment(image), "front")


def test_feet_cut_off(segmenter, scenes):
    image, _, _ = scenes["front"]
    seg = segmenter.segment(np.ascontiguousarray(image[: int(0.8 * H)]))
    with pytest.raises(S.CutOffError, match="cut off|not visible"):
        S.check_photo(seg, "front")


def test_small_person(segmenter, scenes):
    image, _, _ = scenes["front"]
    # Person ~22 % of the height (at 3x padding the detector no longer finds anybody).
    padded = np.vstack([image, np.repeat(image[-1:], int(2.5 * H), axis=0)])
    seg = segmenter.segment(padded)
    with pytest.raises(S.TooSmallError, match="too small"):
        S.check_photo(seg, "front")


def test_arms_close_to_body_warns(segmenter, model):
    angles = np.zeros(len(POSE_NAMES))
    angles[[POSE_NAMES.index("arm_abduction_l"), POSE_NAMES.index("arm_abduction_r")]] = \
        np.deg2rad(5.0)  # arms nearly hanging
    body = model.pose(model.shape.mean.astype(np.float64), angles)
    cam = photo_camera(body, W, H)
    seg = segmenter.segment(render_photo(model, body, cam, np.random.default_rng(2)).image)
    S.check_photo(seg, "front")  # a warning, not an error
    assert any("arms" in w for w in S.warnings_for(seg, "front"))


# ---- pure checks (no mediapipe) -------------------------------------------------------------


def _landmarks(view: str, facing: str = "right") -> np.ndarray:
    """Synthetic BlazePose landmarks of a standing person, pixels."""
    lm = np.zeros((33, 4))
    lm[:, 3] = 0.99
    half = 60.0 if view == "front" else 5.0
    arm = 150.0 if view == "front" else 20.0
    lm[S.SHOULDER_L, :2], lm[S.SHOULDER_R, :2] = (240 + half, 150), (240 - half, 150)
    lm[S.HIP_L, :2], lm[S.HIP_R, :2] = (240 + 0.6 * half, 330), (240 - 0.6 * half, 330)
    lm[S.WRIST_L, :2], lm[S.WRIST_R, :2] = (240 + arm, 320), (240 - arm, 320)
    s = 1.0 if facing == "right" else -1.0
    lm[S.NOSE, :2] = (240 + (0 if view == "front" else 25 * s), 80)
    lm[S.EAR_L, :2], lm[S.EAR_R, :2] = (240 + 20 - (15 * s if view == "side" else 0), 75), \
        (240 - 20 - (15 * s if view == "side" else 0), 75)
    for i in (S.ANKLE_L, S.ANKLE_R, S.HEEL_L, S.HEEL_R):
        lm[i, :2] = (240, 600)
    return lm


def _seg(lm, mask=None, other=0.0):
    if mask is None:
        mask = np.zeros((H, W), dtype=bool)
        mask[60:610, 150:330] = True
    return S.Segmentation(mask=mask, landmarks=lm, score=0.9, other_ratio=other)


def test_view_and_facing_from_landmarks():
    assert S.view_of(_landmarks("front"))[0] == "front"
    assert S.view_of(_landmarks("side"))[0] == "side"
    assert S.view_of(_landmarks("side"))[1] > 0.9
    assert S.facing_of(_landmarks("side", "right")) == "right"
    assert S.facing_of(_landmarks("side", "left")) == "left"
    with pytest.raises(ValueError):
        S.view_of(np.zeros((17, 4)))


def test_clean_mask_keeps_largest_fills_holes_and_reports_others():
    soft = np.zeros((100, 100), dtype=np.float32)
    soft[10:90, 10:40] = 0.9
    soft[40:50, 20:30] = 0.1  # hole
    soft[10:60, 60:90] = 0.8  # second region, 1500 px vs 2300 px (before filling)
    mask, other = S.clean_mask(soft)
    assert mask[45, 25] and not mask[30, 70]
    assert mask.sum() == 80 * 30
    assert other == pytest.approx(1500 / 2300)
    empty, none = S.clean_mask(np.zeros((10, 10)))
    assert not empty.any() and none == 0.0


def test_checks_on_synthetic_segmentations():
    assert S.problems(_seg(_landmarks("front")), "front") == []
    assert S.reason_multiple_people(_seg(_landmarks("front"), other=0.5))
    top = np.zeros((H, W), dtype=bool)
    top[0:500, 150:330] = True
    assert "top" in S.reason_cut_off(_seg(_landmarks("front"), mask=top))
    lm = _landmarks("front")
    lm[[S.HEEL_L, S.HEEL_R], 3] = 0.1
    assert "heels" in S.reason_cut_off(_seg(lm))
    lm = _landmarks("front")
    lm[S.NOSE, 1] = -5.0
    assert "head" in S.reason_cut_off(_seg(lm))
    small = np.zeros((H, W), dtype=bool)
    small[300:450, 200:260] = True
    assert "too small" in S.reason_too_small(_seg(_landmarks("front"), mask=small))
    with pytest.raises(S.PhotoError):
        S.check_photo(_seg(_landmarks("side")), "front")
    assert issubclass(S.PhotoError, ValueError)


def test_arms_warning_from_landmarks():
    lm = _landmarks("front")
    assert S.warnings_for(_seg(lm), "front") == []
    lm[S.WRIST_L, 0] = lm[S.HIP_L, 0] + 10
    assert any("arms" in w for w in S.warnings_for(_seg(lm), "front"))
    assert not any("arms" in w for w in S.warnings_for(_seg(_landmarks("side")), "side"))


def test_fill_holes_equals_scipy():
    from scipy import ndimage

    rng = np.random.default_rng(0)
    for density in (0.3, 0.5, 0.7):
        mask = rng.random((60, 80)) < density
        np.testing.assert_array_equal(S.fill_holes(mask), ndimage.binary_fill_holes(mask))
    ring = np.zeros((9, 9), bool)
    ring[2:7, 2:7] = True
    ring[3:6, 3:6] = False
    assert S.fill_holes(ring)[4, 4] and S.fill_holes(ring).sum() == 25
