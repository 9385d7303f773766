"""Pinhole cameras: projection, look-at, random phone placement, serialisation."""

import json

import numpy as np
import pytest

from bodyshape.render.camera import (
    Camera, CameraSpec, box_corners, fill_fraction, in_frame, intrinsics, look_at,
    sample_camera)

# A body-sized box in the anny frame: A-pose arms, origin near the pelvis, soles at -0.87.
BODY = np.array([[-0.52, -0.32, -0.87], [0.52, 0.10, 0.76]])


def _rotz(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])


def _yawed_bounds(bounds, yaw):
    pts = box_corners(bounds) @ _rotz(yaw).T
    return np.stack([pts.min(0), pts.max(0)])


def test_optical_axis_hits_principal_point():
    K = intrinsics(np.deg2rad(60), 768, 1024)
    R, t = look_at([0.3, -2.5, 1.2], [0.1, 0.0, 0.2], roll=0.04)
    cam = Camera(K, R, t, 768, 1024)
    pt = cam.center + 1.7 * cam.forward
    pix, depth = cam.project(pt)
    np.testing.assert_allclose(pix, [384.0, 512.0], atol=1e-9)
    assert depth == pytest.approx(1.7)
    np.testing.assert_allclose(cam.center, [0.3, -2.5, 1.2], atol=1e-12)


@pytest.mark.parametrize("s", [2, 2048 / 1024])
def test_scaled_camera_projects_to_scaled_pixels(s):
    K = intrinsics(np.deg2rad(60), 768, 1024)
    R, t = look_at([0.3, -2.5, 1.2], [0.1, 0.0, 0.2], roll=0.04)
    cam = Camera(K, R, t, 768, 1024)
    fine = cam.scaled(s)
    assert (fine.width, fine.height) == (round(768 * s), round(1024 * s))
    pts = np.random.default_rng(0).uniform(-0.5, 0.5, (20, 3))
    np.testing.assert_allclose(fine.project(pts)[0], s * cam.project(pts)[0], rtol=1e-12)
    np.testing.assert_array_equal(fine.project(pts)[1], cam.project(pts)[1])


def test_intrinsics_vertical_fov():
    K = intrinsics(np.deg2rad(60), 600, 800)
    # A ray at half the vertical FOV lands on the top edge.
    assert K[1, 1] * np.tan(np.deg2rad(30)) == pytest.approx(400.0)
    assert K[0, 0] == K[1, 1]


def test_look_at_axes_follow_opencv_convention():
    # Camera on the -Y side looking +Y at the subject: world +X is image right, +Z image up.
    R, t = look_at([0, -3, 0], [0, 0, 0])
    cam = Camera(intrinsics(np.deg2rad(60), 100, 100), R, t, 100, 100)
    (xr, yr), _ = cam.project(np.array([0.1, 0.0, 0.0]))
    (xu, yu), _ = cam.project(np.array([0.0, 0.0, 0.1]))
    assert xr > 50 and yr == pytest.approx(50)
    assert yu < 50 and xu == pytest.approx(50)
    with pytest.raises(ValueError):
        look_at([0, 0, 0], [0, 0, 1])


def test_project_broadcasts_batch_shapes():
    R, t = look_at([0, -3, 0], [0, 0, 0])
    cam = Camera(intrinsics(1.0, 64, 64), R, t, 64, 64)
    pts = np.random.default_rng(0).normal(size=(4, 5, 3)) * 0.1
    pix, depth = cam.project(pts)
    assert pix.shape == (4, 5, 2) and depth.shape == (4, 5)
    np.testing.assert_allclose(cam.project(pts[2, 3])[0], pix[2, 3])


@pytest.mark.parametrize("yaw_deg", [0.0, 5.0, -5.0, 90.0, -95.0])
def test_body_box_always_in_frame_and_fill_in_range(yaw_deg):
    spec = CameraSpec()
    bounds = _yawed_bounds(BODY, np.deg2rad(yaw_deg))
    rng = np.random.default_rng(int(yaw_deg) + 100)
    n = 200 if yaw_deg == 0.0 else 40  # 200 on the widest (front) view, fewer on the rest
    for _ in range(n):
        cam = sample_camera(rng, spec, bounds, floor_z=bounds[0, 2])
        assert in_frame(cam, box_corners(bounds), spec.margin * cam.height)
        f = fill_fraction(cam, bounds)
        assert spec.fill[0] - 1e-6 <= f <= spec.fill[1] + 1e-6
        assert (cam.width, cam.height) in {(384, 512), (288, 512)}  # 3:4 and 9:16
        c = cam.center
        assert c[1] < bounds[0, 1]  # in front of the subject
        assert 0.8 - 1e-9 <= c[2] - bounds[0, 2] <= 1.7 + 1e-9
        assert abs(c[0] - bounds.mean(0)[0]) <= 0.1 + 1e-9
        assert cam.forward[1] > 0.5  # looking +Y


def test_fill_hits_the_draw_when_nothing_forces_a_backoff():
    # A slim side-view box fits any frame, so the realised fill equals the drawn one and
    # spreads over the whole range.
    bounds = np.array([[-0.15, -0.3, -0.87], [0.15, 0.1, 0.76]])
    spec = CameraSpec(pitch_deg=0.0, roll_deg=0.0)
    rng = np.random.default_rng(3)
    fills = [fill_fraction(sample_camera(rng, spec, bounds, bounds[0, 2]), bounds)
             for _ in range(60)]
    assert min(fills) < 0.55 and max(fills) > 0.8


def test_same_seed_same_camera():
    spec = CameraSpec()
    a = sample_camera(np.random.default_rng(7), spec, BODY, BODY[0, 2])
    b = sample_camera(np.random.default_rng(7), spec, BODY, BODY[0, 2])
    c = sample_camera(np.random.default_rng(8), spec, BODY, BODY[0, 2])
    assert a.to_dict() == b.to_dict()
    assert a.to_dict() != c.to_dict()


def test_floor_z_sets_camera_height():
    spec = CameraSpec(camera_height=(1.2, 1.2))
    cam = sample_camera(np.random.default_rng(0), spec, BODY, floor_z=-0.87)
    assert cam.center[2] == pytest.approx(-0.87 + 1.2)


def test_to_dict_round_trip_through_json():
    cam = sample_camera(np.random.default_rng(1), CameraSpec(), BODY, BODY[0, 2])
    d = json.loads(json.dumps(cam.to_dict()))
    back = Camera.from_dict(d)
    for name in ("K", "R", "t"):
        np.testing.assert_array_equal(getattr(back, name), getattr(cam, name))
    assert (back.width, back.height) == (cam.width, cam.height)


def test_camera_is_immutable_and_validated():
    cam = sample_camera(np.random.default_rng(1), CameraSpec(), BODY, BODY[0, 2])
    with pytest.raises(ValueError):
        cam.K[0, 0] = 1.0
    with pytest.raises(ValueError):
        Camera(np.eye(3), 2 * np.eye(3), np.zeros(3), 10, 10)
    with pytest.raises(ValueError):
        sample_camera(np.random.default_rng(0), CameraSpec(), BODY[::-1], 0.0)
