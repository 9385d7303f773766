"""Registration properties on the real template (fast: no anny, no shape prior)."""

import numpy as np
import pytest
import scipy.sparse as sp

from bodyshape.shape.register import (
    RegistrationConfig,
    SurfaceSampler,
    edge_laplacian,
    estimate_landmarks,
    register,
    similarity_from_points,
)
from bodyshape.shape.template import load_template


def _rotation(axis, degrees):
    from scipy.spatial.transform import Rotation

    return Rotation.from_rotvec(np.deg2rad(degrees) * np.asarray(axis, float)).as_matrix()


@pytest.fixture(scope="module")
def template():
    return load_template()


def _landmarks(template, vertices):
    return {n: vertices[i] for n, i in zip(template.landmark_names, template.landmark_indices)}


def test_similarity_recovers_known_transform():
    rng = np.random.default_rng(0)
    src = rng.normal(size=(30, 3))
    rot = _rotation([1, 2, 3], 25)
    dst = 1.3 * src @ rot.T + [0.1, -0.2, 0.3]
    sim = similarity_from_points(src, dst)
    assert sim.scale == pytest.approx(1.3)
    np.testing.assert_allclose(sim.rotation, rot, atol=1e-10)
    np.testing.assert_allclose(sim.apply(src), dst, atol=1e-10)


def test_similarity_never_reflects():
    rng = np.random.default_rng(1)
    src = rng.normal(size=(20, 3))
    sim = similarity_from_points(src, src * [-1, 1, 1])
    assert np.linalg.det(sim.rotation) == pytest.approx(1.0)


def test_edge_laplacian_is_sum_over_edges():
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    lap = edge_laplacian(faces, 4)
    x = np.array([0.0, 1.0, 3.0, 7.0])
    edges = [(0, 1), (1, 2), (0, 2), (2, 3), (0, 3)]
    assert x @ lap @ x == pytest.approx(sum((x[i] - x[j]) ** 2 for i, j in edges))
    assert sp.issparse(lap)


def test_register_template_onto_itself_is_identity(template):
    v = template.vertices
    res = register(v, template.faces, _landmarks(template, v), template)
    assert np.abs(res.vertices - v).max() < 1e-6
    assert res.landmark_rms < 1e-6


def test_register_recovers_displaced_scaled_copy(template):
    rot = _rotation([0, 0, 1], 6) @ _rotation([1, 0, 0], 3)
    target = 1.08 * template.vertices @ rot.T + [0.05, -0.3, 0.9]
    res = register(target, template.faces, _landmarks(template, target), template)
    err = np.linalg.norm(res.vertices - target, axis=1)
    assert err.mean() < 1e-4 and err.max() < 1e-3
    assert res.similarity.scale == pytest.approx(1.08, rel=1e-6)


def test_register_from_other_triangulation(template):
    """A re-triangulated (subdivided) copy is a different topology with the same surface."""
    import trimesh

    mesh = trimesh.Trimesh(template.vertices * 1.05, template.faces, process=False)
    sub = mesh.subdivide()
    target_lms = _landmarks(template, mesh.vertices)
    res = register(np.asarray(sub.vertices), np.asarray(sub.faces), target_lms, template)
    err = np.linalg.norm(res.vertices - mesh.vertices, axis=1)
    assert err.mean() < 1e-3


def test_estimate_landmarks_detects_facing(template):
    v = template.vertices * 1.02
    turned = v * [-1, -1, 1]  # facing +Y
    est = estimate_landmarks(turned, template.faces, template,
                             config=RegistrationConfig())
    assert est.facing_flipped
    truth = _landmarks(template, turned)
    err = np.array([np.linalg.norm(est.landmarks[n] - truth[n]) for n in truth])
    assert np.median(err) < 0.01


def test_sampler_query_finds_surface_points(template):
    s = SurfaceSampler.from_mesh(template.vertices, template.faces)
    d, p, n = s.query(template.vertices[:100] + 1e-4 * np.array([0, 0, 1]))
    assert np.all(d < 2e-4)
    np.testing.assert_allclose(np.linalg.norm(n, axis=1), 1.0, atol=1e-9)
