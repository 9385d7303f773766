"""The fit check's camera search (``bodyshape.fitcheck``): coarse search, full-mesh answer."""

import numpy as np
import pytest

from bodyshape.calibrate import CalibrationSpec, calibrate
from bodyshape.fitcheck import VIEW_YAW, fit_view, grid_cameras
from bodyshape.render.raster import mask_iou, silhouette

SPEC = CalibrationSpec()


def _full_mesh_search(body, vertices, view, target):
    """The best IoU over the grid with the full mesh rendered by every camera."""
    v = body.turn(vertices, VIEW_YAW[view])
    return max(mask_iou(calibrate(silhouette(v, body.faces, cam, closed=True), SPEC).image
                        >= 0.5, target >= 0.5) for cam in grid_cameras(v))


@pytest.mark.parametrize("view", ["front", "side"])
def test_a_grid_camera_render_is_explained_exactly(body, view):
    """A canvas rendered by one of the grid's cameras is found again: IoU 1 and the same
    canvas."""
    rest = body.shape.mean.astype(np.float64)
    v = body.turn(rest, VIEW_YAW[view])
    target = calibrate(silhouette(v, body.faces, grid_cameras(v)[3], closed=True), SPEC).image
    fit = fit_view(body, rest, view, target, SPEC)
    assert fit.iou == 1.0
    np.testing.assert_array_equal(fit.canvas, target >= 0.5)


def test_coarse_search_matches_the_full_mesh_search(body):
    """On other bodies and poses the coarse search's answer is within 0.02 IoU of a search
    that renders the full mesh through every camera (the bound fitcheck's docs give), and
    never above it."""
    rng = np.random.default_rng(0)
    k = body.shape.n_components
    for _ in range(3):
        rest = body.shape.decode(0.8 * rng.standard_normal((1, k)) * body.shape.std)[0]
        a0 = body.rest_pose(1).angles[0]
        angles = a0 + rng.normal(0.0, 0.15, a0.shape)
        posed = body.pose(rest, angles)
        v = body.turn(posed, 0.0)
        cam = grid_cameras(v)[0]
        target = calibrate(silhouette(v, body.faces, cam, closed=True), SPEC).image
        fit = fit_view(body, rest, "front", target, SPEC)  # canonical A-pose against posed
        best = _full_mesh_search(body, rest, "front", target)
        assert best - 0.02 <= fit.iou <= best + 1e-12
