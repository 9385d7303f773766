"""Calibration of full-frame masks onto the network canvas."""

import numpy as np
import pytest

from bodyshape.calibrate import CalibrationSpec, calibrate


def _rect_mask(h=480, w=360, top=100, left=150, rh=200, rw=60):
    m = np.zeros((h, w), bool)
    m[top:top + rh, left:left + rw] = True
    return m


def _blob(h=400, w=300):
    """A body-ish asymmetric mask: a head, a torso and one raised arm."""
    yy, xx = np.mgrid[:h, :w]
    m = (((xx - 140) / 25.0) ** 2 + ((yy - 80) / 30.0) ** 2 <= 1.0)
    m |= (abs(xx - 140) <= 45) & (yy >= 110) & (yy < 330)
    m |= (xx >= 185) & (xx < 200) & (yy >= 60) & (yy < 200)
    return m


def _soft_iou(a, b):
    return np.minimum(a, b).sum() / np.maximum(a, b).sum()


def test_rectangle_maps_to_centred_rectangle_of_expected_height():
    spec = CalibrationSpec()
    cal = calibrate(_rect_mask(), spec)
    img = cal.image
    assert img.shape == (128, 128) and img.dtype == np.float32
    assert img.min() >= 0.0 and img.max() <= 1.0
    s = 115.2 / 200
    assert cal.scale == pytest.approx(s)
    # Height 115.2 px centred on row 64: rows [6.4, 121.6]; width 60 s = 34.56 px centred on
    # column 64: [46.72, 81.28]. Area averaging gives fractional coverage at the borders.
    assert img.sum() == pytest.approx(115.2 * 60 * s, rel=1e-6)
    rows = img.max(axis=1)
    assert rows[7:121].min() == pytest.approx(1.0) and rows[:6].max() == 0 and rows[122:].max() == 0
    assert rows[6] == pytest.approx(0.6) and rows[121] == pytest.approx(0.6)
    cols = img.max(axis=0)
    assert cols[47:81].min() == pytest.approx(1.0) and cols[:46].max() == 0
    assert cols[46] == pytest.approx(0.28) and cols[81] == pytest.approx(0.28)
    # The bounding box lands exactly where requested.
    np.testing.assert_array_equal(cal.bbox, [150, 100, 210, 300])
    np.testing.assert_allclose(cal.to_canvas([[150, 100], [210, 300]]),
                               [[46.72, 6.4], [81.28, 121.6]], atol=1e-9)


def test_translation_gives_identical_image():
    m = _blob()
    a = calibrate(m)
    big = np.zeros((700, 650), bool)
    big[123:523, 301:601] = m
    b = calibrate(big)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_allclose(b.to_canvas(a.to_frame([[10.0, 20.0]]) + [301, 123]),
                               [[10.0, 20.0]], atol=1e-9)


def test_nearest_2x_upscale_gives_nearly_the_same_image():
    m = _blob()
    up = np.repeat(np.repeat(m, 2, axis=0), 2, axis=1)
    a, b = calibrate(m), calibrate(up)
    assert b.scale == pytest.approx(a.scale / 2)
    assert _soft_iou(a.image, b.image) > 0.98
    assert ((a.image > 0.5) == (b.image > 0.5)).mean() > 0.999


def test_mirror():
    m = _blob()
    plain = calibrate(m)
    flipped = calibrate(m, mirror=True)
    assert flipped.mirrored and not plain.mirrored
    np.testing.assert_allclose(flipped.image, plain.image[:, ::-1], atol=1e-6)
    # Mirroring the mask itself and calibrating gives the same canvas.
    np.testing.assert_allclose(calibrate(m[:, ::-1]).image, flipped.image, atol=1e-6)
    # A frame point maps to the mirrored canvas column.
    p = np.array([190.0, 100.0])
    q0, q1 = plain.to_canvas(p), flipped.to_canvas(p)
    assert q1[0] == pytest.approx(128 - q0[0]) and q1[1] == pytest.approx(q0[1])
    # The spec can switch mirroring off.
    off = calibrate(m, CalibrationSpec(mirror_side_views=False), mirror=True)
    assert not off.mirrored
    np.testing.assert_array_equal(off.image, plain.image)


@pytest.mark.parametrize("mirror", [False, True])
def test_round_trip_maps(mirror):
    cal = calibrate(_blob(), mirror=mirror)
    p = np.random.default_rng(0).uniform(-50, 500, size=(7, 3, 2))
    np.testing.assert_allclose(cal.to_frame(cal.to_canvas(p)), p, atol=1e-9)
    np.testing.assert_allclose(cal.to_canvas(cal.to_frame(p)), p, atol=1e-9)
    # The mask's area (frame px) scales by scale**2 onto the canvas.
    assert cal.image.sum() == pytest.approx(_blob().sum() * cal.scale ** 2, rel=1e-6)


def test_custom_canvas_and_uint8_mask():
    spec = CalibrationSpec(canvas_width=96, canvas_height=160, body_fraction=0.8)
    cal = calibrate(_rect_mask().astype(np.uint8) * 255, spec)
    assert cal.image.shape == (160, 96)
    assert cal.scale == pytest.approx(128 / 200)
    np.testing.assert_allclose(cal.to_canvas([[180.0, 200.0]]), [[48.0, 80.0]], atol=1e-9)


def test_empty_mask_raises():
    with pytest.raises(ValueError, match="empty"):
        calibrate(np.zeros((50, 40), bool))


def test_too_wide_raises():
    with pytest.raises(ValueError, match="too wide"):
        calibrate(_rect_mask(rh=50, rw=300))


def test_non_2d_raises():
    with pytest.raises(ValueError, match="2-D"):
        calibrate(np.ones((4, 4, 3), bool))


@pytest.mark.parametrize("mirror", [False, True])
def test_resample_reproduces_own_image_and_moves_a_second_mask(mirror):
    m = _blob()
    cal = calibrate(m, mirror=mirror)
    np.testing.assert_allclose(cal.resample(m), cal.image, atol=1e-5)
    # A second mask shifted by 4 frame px lands 4 * scale canvas px away (up to the box
    # filter's sub-pixel bias), same area.
    shifted = np.roll(m, 4, axis=0)
    own, got = cal.resample(m), cal.resample(shifted)
    assert got.sum() == pytest.approx(own.sum(), rel=1e-9)
    rows = np.arange(got.shape[0])
    centroid = lambda img: (img.sum(1) * rows).sum() / img.sum()
    assert centroid(got) - centroid(own) == pytest.approx(4 * cal.scale, abs=0.01)
    with pytest.raises(ValueError, match="2-D"):
        cal.resample(m[0])
