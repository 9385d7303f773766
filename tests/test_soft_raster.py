"""Differentiable soft silhouettes (bodyshape.render.soft) against the exact rasterizer."""

import numpy as np
import pytest
import torch
import trimesh

from bodyshape.render.camera import Camera, intrinsics, look_at
from bodyshape.render.raster import rasterize_silhouette
from bodyshape.render.soft import (camera_tensors, mesh_edges, project, soft_iou_loss,
                                   soft_silhouette)
from bodyshape.shape.coarse import load_coarse, to_coarse

AGGREGATES = ("softras", "contour")


def _camera(size, position=(0.2, -3.2, 0.1), roll=0.0):
    R, t = look_at(position, (0.0, 0.0, -0.05), roll=roll)
    return Camera(intrinsics(np.deg2rad(40), size, size), R, t, size, size)


@pytest.fixture(scope="module")
def body(tpl):
    coarse = load_coarse()
    return to_coarse(tpl.vertices), torch.tensor(coarse.faces)


def _body_pix(body, cameras):
    v, _ = body
    K, R, t = camera_tensors(cameras, dtype=torch.float64)
    return project(torch.tensor(v).expand(len(cameras), -1, -1), K, R, t)


def _square(x0, y0, x1, y1):
    """Two triangles; the diagonal runs through pixel centres when corners are on them."""
    pix = torch.tensor([[[x0, y0], [x1, y0], [x1, y1], [x0, y1]]], dtype=torch.float64)
    # Counter-clockwise in the image (y down) = negative signed area = front facing.
    return pix, torch.tensor([[0, 3, 2], [0, 2, 1]])


def test_project_matches_camera():
    cams = [_camera(64), _camera(96, (3.0, 0.5, 0.4), roll=0.1)]
    pts = np.random.default_rng(0).normal(scale=0.4, size=(2, 50, 3))
    K, R, t = camera_tensors(cams, dtype=torch.float64)
    pix = project(torch.tensor(pts), K, R, t).numpy()
    for b, cam in enumerate(cams):
        np.testing.assert_allclose(pix[b], cam.project(pts[b])[0], atol=1e-9)


def test_project_gradcheck():
    cam = _camera(32, (0.5, -2.0, 0.3), roll=0.2)
    K, R, t = camera_tensors([cam], dtype=torch.float64)
    v = torch.tensor(np.random.default_rng(1).normal(scale=0.3, size=(1, 4, 3)),
                     requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: project(x, K, R, t), (v,))


# A tiny mesh with a fold: a 4-triangle fan plus one triangle folded back over it, at
# generic (non-aligned) positions so no pixel centre sits on a kink within gradcheck's eps.
_FAN_PIX = [[4.13, 3.87], [1.21, 1.34], [6.72, 1.08], [6.91, 6.63], [1.36, 6.82], [4.9, 2.2]]
_FAN_FACES = [[0, 2, 1], [0, 3, 2], [0, 4, 3], [0, 1, 4], [1, 2, 5]]  # fan: front faces


@pytest.mark.parametrize("aggregate", AGGREGATES)
@pytest.mark.parametrize("cull", [False, True])
def test_soft_silhouette_gradcheck(aggregate, cull):
    pix = torch.tensor([_FAN_PIX], dtype=torch.float64, requires_grad=True)
    faces = torch.tensor(_FAN_FACES)

    def render(p):
        return soft_silhouette(p, faces, 8, 8, sigma=0.5, cull_backfaces=cull,
                               aggregate=aggregate)

    out = render(pix)
    assert 0.3 < out.mean() < 0.9  # the test covers a real mix of inside and edge pixels
    assert torch.autograd.gradcheck(render, (pix,), atol=1e-6)


@pytest.mark.parametrize("aggregate", AGGREGATES)
def test_big_square_inside_and_outside(aggregate):
    pix, faces = _square(3.3, 4.2, 35.6, 36.7)
    sil = soft_silhouette(pix, faces, 40, 44, aggregate=aggregate)[0].numpy()
    assert sil.shape == (40, 44)
    y, x = np.mgrid[0:40, 0:44] + 0.5
    # Distance of each centre to the outline (positive inside) and to the diagonal.
    inner = np.minimum.reduce([x - 3.3, 35.6 - x, y - 4.2, 36.7 - y])
    diag = np.abs((x - 3.3) * (36.7 - 4.2) - (y - 4.2) * (35.6 - 3.3)) / np.hypot(32.3, 32.5)
    deep = inner > 1.0
    if aggregate == "softras":
        deep &= diag > 1.0  # SoftRas dips to 0.75 along interior edges
        assert np.all(sil[(inner > 0) & (diag < 0.05)] < 0.8)
    assert np.all(sil[deep] > 0.99)
    assert np.all(sil[inner < -1.0] == 0.0)  # exactly 0 beyond the truncation radius
    assert np.all((sil >= 0) & (sil <= 1))
    if aggregate == "contour":
        # The 0.5 level is the outline: A > 0.5 exactly at covered centres.
        np.testing.assert_array_equal(sil > 0.5, inner > 0)


@pytest.mark.parametrize("aggregate", AGGREGATES)
def test_batched_equals_per_sample(aggregate, body):
    cams = [_camera(48), _camera(48, (3.0, 0.4, 0.2)), _camera(48, (-1.0, -3.0, 0.8), 0.2)]
    pix = _body_pix(body, cams)
    pix = pix + torch.tensor([0.0, 0.31, -0.7])[:, None, None]  # not three identical offsets
    faces = body[1]
    batched = soft_silhouette(pix, faces, 48, 48, aggregate=aggregate, cull_backfaces=True)
    for b in range(len(cams)):
        one = soft_silhouette(pix[b:b + 1], faces, 48, 48, aggregate=aggregate,
                              cull_backfaces=True)
        np.testing.assert_allclose(batched[b:b + 1].numpy(), one.numpy(), atol=1e-12)


@pytest.mark.parametrize("position", [(0.2, -3.2, 0.1), (3.2, 0.1, 0.1), (-2.3, -2.3, 0.4)])
def test_body_against_exact_rasterizer(body, position):
    cam = _camera(64, position)
    pix = _body_pix(body, [cam])
    faces = body[1]
    exact = rasterize_silhouette(pix[0].numpy(), faces.numpy(), 64, 64)

    def iou(sil):
        hard = sil[0].numpy() > 0.5
        return (hard & exact).sum() / (hard | exact).sum()

    # "contour": the 0.5 level is the exact outline.
    assert iou(soft_silhouette(pix, faces, 64, 64, aggregate="contour")) > 0.999
    # "softras": every covered centre has A >= 0.5 (its own triangle gives D >= 0.5), and
    # the aggregate fattens the outline; a sharp sigma brings it back to the exact one.
    fat = soft_silhouette(pix, faces, 64, 64, aggregate="softras", cull_backfaces=True)
    assert np.all(fat[0].numpy()[exact] >= 0.5)
    assert 0.7 < iou(fat) < 0.97
    sharp = soft_silhouette(pix, faces, 64, 64, sigma=0.001, aggregate="softras",
                            cull_backfaces=True)
    assert iou(sharp) > 0.97


def test_culled_and_unculled_agree_on_a_closed_mesh(body):
    pix = _body_pix(body, [_camera(64, (2.0, -2.5, 0.3))])
    faces = body[1]
    kw = dict(height=64, width=64)
    both = soft_silhouette(pix, faces, aggregate="contour", **kw)
    front = soft_silhouette(pix, faces, aggregate="contour", cull_backfaces=True, **kw)
    np.testing.assert_allclose(front.numpy(), both.numpy(), atol=1e-12)
    # SoftRas: back faces only add probability, around the outline (within ~1 px).
    both = soft_silhouette(pix, faces, cull_backfaces=False, **kw)[0].numpy()
    front = soft_silhouette(pix, faces, cull_backfaces=True, **kw)[0].numpy()
    assert np.all(both >= front - 1e-12)
    hb, hf = both > 0.5, front > 0.5
    assert (hb & hf).sum() / (hb | hf).sum() > 0.9
    assert np.abs(both - front).mean() < 0.02


def test_mesh_edges_of_closed_and_open_meshes():
    box = trimesh.creation.box()
    edges, opposite = mesh_edges(box.faces)
    assert len(edges) == 18 and np.all(opposite >= 0)
    edges, opposite = mesh_edges(np.array([[0, 3, 2], [0, 2, 1]]))
    assert len(edges) == 5 and (opposite[:, 1] >= 0).sum() == 1  # only the diagonal is shared


@pytest.mark.parametrize("aggregate", AGGREGATES)
def test_empty_offscreen_and_degenerate(aggregate):
    faces = torch.tensor([[0, 1, 2], [3, 4, 5], [6, 7, 8]])
    pix = torch.tensor([[[-50.0, -50.0], [-40.0, -50.0], [-40.0, -40.0],  # off-screen
                         [2.0, 2.0], [5.0, 5.0], [8.0, 8.0],  # degenerate (a segment)
                         [1e30, 0.0], [2e30, 1.0], [1e30, 3.0]]],  # absurdly far
                       dtype=torch.float64, requires_grad=True)
    sil = soft_silhouette(pix, faces, 10, 10, aggregate=aggregate)
    assert torch.isfinite(sil).all() and sil.max() <= 0.5
    sil.sum().backward()
    assert torch.isfinite(pix.grad).all()
    culled = soft_silhouette(pix[:, :3], faces[:1], 10, 10, cull_backfaces=True,
                             aggregate=aggregate)
    assert culled.abs().sum() == 0


@pytest.mark.parametrize("aggregate", AGGREGATES)
def test_iou_gradient_pulls_towards_the_target(aggregate):
    target = soft_silhouette(_square(6.0, 5.0, 20.0, 19.0)[0], _square(0, 0, 1, 1)[1],
                             24, 24, aggregate=aggregate).detach()
    target = (target > 0.5).double()
    shift = torch.tensor([1.3, -0.8], dtype=torch.float64, requires_grad=True)
    pix, faces = _square(6.0, 5.0, 20.0, 19.0)
    loss = soft_iou_loss(soft_silhouette(pix + shift, faces, 24, 24, aggregate=aggregate),
                         target[None] if target.ndim == 2 else target)
    loss.sum().backward()
    assert shift.grad[0] > 0 and shift.grad[1] < 0  # descent moves the square back


def test_soft_iou_loss():
    a = torch.zeros(3, 4, 4)
    a[0, :2] = 1.0  # half
    a[1] = 0.5
    b = torch.zeros(3, 4, 4)
    b[0, :2] = 1.0
    b[1, :, :2] = 1.0
    loss = soft_iou_loss(a, b)
    assert loss[0].abs() < 1e-6 and loss[2].abs() < 1e-6  # equal masks, empty masks
    # inter = 8 * 0.5 = 4; union = 16 * 0.5 + 8 - 4 = 12.
    assert torch.isclose(loss[1], torch.tensor(1.0 - 4.0 / 12.0), atol=1e-6)
    disjoint = soft_iou_loss(b[:1], 1.0 - b[:1])
    assert torch.isclose(disjoint, torch.ones(1), atol=1e-6).all()


def test_contour_ignores_hidden_edges_away_from_the_outline():
    # A small triangle lying inside a big square: its edges are contour edges (one face
    # each) but hidden, > 1 px from any uncovered centre, so A stays 1 around them (the
    # centres at y = 10.5 and 11.5 lie within 0.6 px of the top edge: a dip would be < 0.93).
    pix, faces = _square(2.2, 2.3, 29.7, 29.6)
    pix = torch.cat([pix, torch.tensor([[[10.1, 10.2], [20.3, 12.0], [14.0, 20.0]]],
                                       dtype=torch.float64)], dim=1)
    faces = torch.cat([faces, torch.tensor([[4, 6, 5]])])
    y, x = np.mgrid[0:32, 0:32] + 0.5
    near = (np.abs(y - 11.0) < 2) & (x > 12) & (x < 18)  # around the hidden top edge
    contour = soft_silhouette(pix, faces, 32, 32, aggregate="contour")[0].numpy()
    assert np.all(contour[near] == 1.0)
