"""Exact CPU silhouettes against analytic pixel sets, OpenCV and ray casting."""

import cv2
import numpy as np
import pytest
import trimesh

from bodyshape.render.camera import Camera, intrinsics, look_at
from bodyshape.render.raster import (FRONT_FACING, rasterize_silhouette, silhouette,
                                     silhouettes)
from bodyshape.shape.template import load_template


def _cube_camera():
    # Unit cube at the origin seen along +Y from 10.5 m: the front face (depth 10 m) spans
    # 500 * 0.5 / 10 = 25 px either side of the principal point (64, 64), i.e. [39, 89] on
    # both axes; the rest of the cube projects inside that square. Edges sit half a pixel
    # from the nearest centres, so the expected set has no ties.
    K = np.array([[500.0, 0, 64], [0, 500.0, 64], [0, 0, 1]])
    R, t = look_at([0, -10.5, 0], [0, 0, 0])
    return Camera(K, R, t, 128, 128)


def _expected_square(lo, hi, size):
    c = np.arange(size) + 0.5
    inside = (c >= lo) & (c <= hi)
    return inside[:, None] & inside[None, :]


def test_unit_cube_matches_analytic_square_exactly():
    box = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    cam = _cube_camera()
    sil = silhouette(np.asarray(box.vertices), np.asarray(box.faces), cam)
    expected = _expected_square(39.0, 89.0, 128)
    assert expected.sum() == 50 * 50
    np.testing.assert_array_equal(sil, expected)


def test_centres_on_edges_are_inside():
    # A square whose edges run exactly through pixel centres (x, y in [2.5, 6.5]), split
    # along its diagonal, which also passes through centres: the inclusive rule covers the
    # closed square, so 5 x 5 pixels, and the shared diagonal leaves no crack.
    pix = np.array([[2.5, 2.5], [6.5, 2.5], [6.5, 6.5], [2.5, 6.5]])
    for faces in ([[0, 1, 2], [0, 2, 3]], [[0, 2, 1], [3, 2, 0]]):  # both windings
        sil = rasterize_silhouette(pix, np.array(faces), 10, 10)
        np.testing.assert_array_equal(sil, _expected_square(2.5, 6.5, 10))


def _cv2_union(tris_cv, shape):
    """Reference: cv2.fillPoly one triangle at a time (a single call would apply the
    even-odd/non-zero polygon rule across triangles instead of taking their union)."""
    ref = np.zeros(shape, np.uint8)
    for tri in tris_cv:
        cv2.fillPoly(ref, [np.asarray(tri, np.int32)], 1)
    return ref.astype(bool)


def test_overlapping_triangles_have_no_hole():
    # Right triangles with integer OpenCV vertices (legs axis-aligned, 45 degree
    # hypotenuses) where cv2's inclusive fill and the centre rule agree pixel for pixel.
    # OpenCV puts pixel centres at integers, this module at +0.5.
    tris_cv = np.array([[[2, 2], [30, 2], [2, 30]], [[10, 10], [36, 10], [10, 36]]])
    pix = (tris_cv.reshape(-1, 2) + 0.5).astype(float)
    faces = np.arange(6).reshape(2, 3)
    sil = rasterize_silhouette(pix, faces, 40, 40)
    np.testing.assert_array_equal(sil, _cv2_union(tris_cv, (40, 40)))
    # The overlap region is covered (an even-odd fill would leave it empty).
    assert sil[10:16, 10:16].all()
    even_odd = np.zeros((40, 40), np.uint8)
    for tri in tris_cv:
        one = np.zeros((40, 40), np.uint8)
        cv2.fillPoly(one, [tri.astype(np.int32)], 1)
        even_odd ^= one
    assert not even_odd[10:16, 10:16].any()


def _dist_to_segments(p, a, b):
    """(N,) distance from (N, 2) points to the nearest of (S, 2)-(S, 2) segments."""
    ab = b - a
    u = np.clip(np.einsum("nsk,sk->ns", p[:, None] - a, ab) / (ab * ab).sum(1), 0.0, 1.0)
    return np.linalg.norm(p[:, None] - (a + u[..., None] * ab), axis=2).min(axis=1)


def test_general_triangles_match_cv2_up_to_its_outline():
    # Slanted edges: cv2 rounds its outline to whole pixels, so the two may differ, but only
    # on pixels whose centre is within a pixel of some triangle edge.
    rng = np.random.default_rng(0)
    tris_cv = rng.integers(-10, 70, size=(12, 3, 2))
    sil = rasterize_silhouette((tris_cv.reshape(-1, 2) + 0.5).astype(float),
                               np.arange(36).reshape(12, 3), 64, 48)
    ref = _cv2_union(tris_cv, (48, 64))
    diff = np.argwhere(sil != ref)[:, ::-1].astype(float)  # (x, y) in cv2 coordinates
    assert len(diff) <= 0.05 * ref.sum()
    a = tris_cv.astype(float)
    b = np.roll(a, -1, axis=1)
    assert (_dist_to_segments(diff, a.reshape(-1, 2), b.reshape(-1, 2)) <= 1.0).all()


def test_degenerate_and_offscreen_triangles():
    pix = np.array([[1.0, 1.0], [5.0, 5.0], [9.0, 9.0],  # collinear
                    [-1e9, -1e9], [1e9, -1e9], [0.0, 1e9],  # covers the whole image
                    [200.0, 200.0], [300.0, 200.0], [200.0, 300.0],  # fully outside
                    [np.nan, 0.0], [1.0, 1.0], [2.0, 5.0]])  # non-finite
    sil = rasterize_silhouette(pix, np.array([[0, 1, 2]]), 16, 12)
    assert not sil.any()
    sil = rasterize_silhouette(pix, np.array([[6, 7, 8], [9, 10, 11]]), 16, 12)
    assert not sil.any()
    sil = rasterize_silhouette(pix, np.array([[3, 4, 5]]), 16, 12)
    assert sil.all() and sil.shape == (12, 16)


def test_partly_outside_triangle_is_clipped():
    c = np.arange(8) + 0.5
    r = np.arange(30) + 0.5
    # (-10, -10), (30, -10), (-10, 30): two vertices off-image; inside iff x + y <= 20.
    pix = np.array([[-10.0, -10.0], [30.0, -10.0], [-10.0, 30.0]])
    sil = rasterize_silhouette(pix, np.array([[0, 1, 2]]), 8, 30)
    np.testing.assert_array_equal(sil, (r[:, None] + c[None, :]) <= 20.0)
    # (40, 40), (-30, 40), (40, -30): every vertex off-image; inside iff x + y >= 10.
    pix = np.array([[40.0, 40.0], [-30.0, 40.0], [40.0, -30.0]])
    sil = rasterize_silhouette(pix, np.array([[0, 1, 2]]), 8, 30)
    np.testing.assert_array_equal(sil, (r[:, None] + c[None, :]) >= 10.0)


def test_behind_camera_raises():
    box = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    R, t = look_at([0, -0.2, 0], [0, 1, 0])  # camera inside the cube
    cam = Camera(intrinsics(1.0, 32, 32), R, t, 32, 32)
    with pytest.raises(ValueError, match="behind the camera"):
        silhouette(np.asarray(box.vertices), np.asarray(box.faces), cam)


def test_template_matches_ray_casting():
    tpl = load_template()
    w, h = 96, 128
    R, t = look_at([0.15, -3.2, 0.3], [0.0, 0.0, -0.05], roll=0.03)
    cam = Camera(intrinsics(np.deg2rad(40), w, h), R, t, w, h)
    sil = silhouette(tpl.vertices, tpl.faces, cam)
    assert 0.05 < sil.mean() < 0.5  # the body is in view

    jj, ii = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    rays = np.stack([jj.ravel(), ii.ravel(), np.ones(jj.size)], axis=1) @ np.linalg.inv(cam.K).T
    dirs = rays @ cam.R  # camera -> world: R.T @ d for each row d
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    mesh = trimesh.Trimesh(tpl.vertices, tpl.faces, process=False)
    hit = mesh.ray.intersects_any(np.broadcast_to(cam.center, dirs.shape), dirs).reshape(h, w)
    iou = (sil & hit).sum() / (sil | hit).sum()
    assert iou >= 0.999
    # A closed, outward mesh: front faces alone give the same mask (and they are the faces
    # whose normals point at the camera).
    np.testing.assert_array_equal(silhouette(tpl.vertices, tpl.faces, cam, closed=True), sil)
    pix, _ = cam.project(tpl.vertices)
    f = tpl.faces
    area = np.cross(pix[f[:, 1]] - pix[f[:, 0]], pix[f[:, 2]] - pix[f[:, 0]])
    facing = (mesh.face_normals * (mesh.triangles_center - cam.center)).sum(1) < 0
    assert np.all(np.sign(area[facing & (area != 0)]) == FRONT_FACING)


def test_keep_selects_one_winding():
    pix = np.array([[1.0, 1.0], [7.0, 1.0], [1.0, 7.0]])
    ccw, cw = np.array([[0, 1, 2]]), np.array([[0, 2, 1]])
    assert rasterize_silhouette(pix, ccw, 8, 8).any()
    for faces in (ccw, cw):
        kept = [rasterize_silhouette(pix, faces, 8, 8, keep=k).any() for k in (1, -1)]
        assert sorted(kept) == [False, True]
    with pytest.raises(ValueError, match="keep"):
        rasterize_silhouette(pix, ccw, 8, 8, keep=2)


def test_batched_silhouettes():
    box = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    v = np.asarray(box.vertices)
    cam = _cube_camera()
    out = silhouettes(np.stack([v, v + [0.2, 0.0, 0.0]]), box.faces, [cam, cam])
    assert out.shape == (2, 128, 128)
    np.testing.assert_array_equal(out[0], silhouette(v, box.faces, cam))
    assert out[1].sum() == out[0].sum() and not np.array_equal(out[0], out[1])
