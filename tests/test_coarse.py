"""The decimated template and its fixed vertex map (bodyshape.shape.coarse)."""

import numpy as np
import pytest
import torch
import trimesh

from bodyshape.assets import DEFAULT_SHAPE_MODEL
from bodyshape.render.camera import Camera, intrinsics, look_at
from bodyshape.render.raster import silhouette
from bodyshape.shape.coarse import load_coarse, to_coarse
from bodyshape.shape.pca import ShapeModel


@pytest.fixture(scope="module")
def coarse():
    return load_coarse()


@pytest.fixture(scope="module")
def bodies():
    # Three bodies from the shipped shape model (any mesh in the template topology).
    model = ShapeModel.load(DEFAULT_SHAPE_MODEL)
    return model.sample(3, np.random.default_rng(5)).vertices.astype(np.float64)


def test_size_and_hash(coarse, tpl):
    assert coarse.template_hash == tpl.hash
    assert 1000 <= coarse.n_vertices <= 1500
    assert 2000 <= len(coarse.faces) <= 3000
    assert np.all(coarse.map_weight >= 0)
    np.testing.assert_allclose(coarse.map_weight.sum(1), 1.0, atol=1e-6)
    # Each coarse vertex is tied to one template triangle.
    tri = {tuple(sorted(f)) for f in tpl.faces.tolist()}
    assert all(tuple(sorted(r)) in tri for r in coarse.map_index.tolist())
    assert not coarse.faces.flags.writeable


def test_coarse_template_is_closed_and_outward(coarse, tpl, bodies):
    for v in (tpl.vertices, *bodies):
        m = trimesh.Trimesh(to_coarse(v), coarse.faces, process=False)
        assert m.is_watertight and m.is_winding_consistent
        full = trimesh.Trimesh(v, tpl.faces, process=False)
        # Outward (positive volume), and the decimation loses little volume.
        assert 0.95 * full.volume < m.volume < 1.01 * full.volume
    assert m.euler_number == 2  # genus 0, like the template


def test_map_stays_on_the_template_surface(coarse, tpl):
    v = to_coarse(tpl.vertices)
    full = trimesh.Trimesh(tpl.vertices, tpl.faces, process=False)
    _, to_surface, _ = trimesh.proximity.closest_point(full, v)
    assert to_surface.max() < 1e-5  # barycentric points on the template itself
    # And the coarse surface stays close to the template everywhere (fingers merge).
    m = trimesh.Trimesh(v, coarse.faces, process=False)
    _, dist, _ = trimesh.proximity.closest_point(m, tpl.vertices)
    assert dist.mean() < 0.003 and np.percentile(dist, 99) < 0.006


def test_batched_torch_numpy_and_matrix_agree(coarse, bodies):
    one = np.stack([to_coarse(b) for b in bodies])
    np.testing.assert_array_equal(to_coarse(bodies), one)
    nested = to_coarse(np.stack([bodies, bodies]))  # any leading shape
    assert nested.shape == (2, 3, coarse.n_vertices, 3)
    np.testing.assert_array_equal(nested[1], one)
    np.testing.assert_allclose(coarse.matrix() @ bodies[0], one[0], atol=1e-12)
    assert to_coarse(bodies.astype(np.float32)).dtype == np.float32

    t = torch.tensor(bodies, dtype=torch.float64, requires_grad=True)
    out = to_coarse(t)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float64
    np.testing.assert_allclose(out.detach().numpy(), one, atol=1e-12)
    out.sum().backward()
    # d(sum)/dV = column sums of the map, the same for every body and axis.
    col = coarse.matrix().sum(0)
    np.testing.assert_allclose(t.grad[1, :, 2].numpy(), col, atol=1e-6)


def test_rejects_other_topologies(coarse):
    with pytest.raises(ValueError):
        to_coarse(np.zeros((10, 3)))
    with pytest.raises(TypeError):
        to_coarse([[0.0, 0.0, 0.0]] * 13348)  # lists have no .shape -> not accepted quietly


@pytest.mark.parametrize("position", [(0.2, -3.2, 0.1), (3.2, 0.1, 0.1), (-2.3, -2.3, 0.4)])
def test_silhouette_matches_full_template(coarse, tpl, position):
    size = 128
    R, t = look_at(position, (0.0, 0.0, -0.05))
    cam = Camera(intrinsics(np.deg2rad(40), size, size), R, t, size, size)
    full = silhouette(tpl.vertices, tpl.faces, cam, closed=True)
    small = silhouette(to_coarse(tpl.vertices), coarse.faces, cam, closed=True)
    assert (full & small).sum() / (full | small).sum() > 0.97
