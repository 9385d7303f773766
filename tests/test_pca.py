"""Tests for the PCA shape model on small generated fixtures (V=200, N=60)."""

from __future__ import annotations

import dataclasses
import json
import logging

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from bodyshape.shape.pca import (
    FORMAT_VERSION,
    ShapeModel,
    procrustes_align,
    reconstruction_error,
)

V = 200
N = 60
RANK = 6


def _template(rng: np.random.Generator) -> np.ndarray:
    """A body-sized random point cloud, meters."""
    return rng.standard_normal((V, 3)) * np.array([0.15, 0.1, 0.5]) + np.array([0.0, 0.0, 0.9])


def _low_rank(rng: np.random.Generator, n: int, rank: int = RANK):
    """Template plus low-rank deformations: (n, V, 3), basis (rank, 3V) and coefficients."""
    template = _template(rng)
    basis = rng.standard_normal((rank, 3 * V)) * 0.01
    scales = np.geomspace(1.0, 0.1, rank)
    coeffs = rng.standard_normal((n, rank)) * scales
    return template + (coeffs @ basis).reshape(n, V, 3), template


def _random_rigid(rng: np.random.Generator, n: int):
    rot = Rotation.random(n, random_state=rng).as_matrix()
    trans = rng.normal(scale=0.5, size=(n, 3))
    return rot, trans


FACES = np.array([[0, 1, 2], [2, 3, 4], [4, 5, 0]], dtype=np.int64)
LANDMARKS = ("head_top", "left_heel")


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(1)
    meshes, template = _low_rank(rng, N)
    sexes = ["female" if i % 3 else "male" for i in range(N)]
    sexes[0] = None
    return meshes, template, sexes


@pytest.fixture(scope="module")
def plain_model(data):
    """No alignment, K = the data's rank: the training set lies exactly in the span."""
    meshes, _, _ = data
    return ShapeModel.fit(meshes, FACES, "abc123", LANDMARKS, n_components=RANK, align=False)


@pytest.fixture(scope="module")
def model(data):
    """Aligned, with per-sex statistics and a 2-component mixture."""
    meshes, _, sexes = data
    rng = np.random.default_rng(7)
    rot, trans = _random_rigid(rng, N)
    moved = meshes @ rot.transpose(0, 2, 1) + trans[:, None, :]
    return ShapeModel.fit(
        moved.astype(np.float32), FACES, "abc123", LANDMARKS, n_components=10,
        sexes=sexes, sources={"synthetic": N}, n_mixture=2, rng=np.random.default_rng(3),
    )


# ---- Procrustes ------------------------------------------------------------------------------


def test_procrustes_recovers_rotation_and_translation():
    rng = np.random.default_rng(0)
    ref = _template(rng)
    rot, trans = _random_rigid(rng, 5)
    moved = ref @ rot.transpose(0, 2, 1) + trans[:, None, :]
    al = procrustes_align(moved, ref)
    np.testing.assert_allclose(al.vertices, np.broadcast_to(ref, moved.shape), atol=1e-10)
    # The recovered transform is the inverse of the applied one.
    np.testing.assert_allclose(al.rotation, rot.transpose(0, 2, 1), atol=1e-10)
    np.testing.assert_allclose(al.translation, -np.einsum("bji,bj->bi", rot, trans), atol=1e-10)
    np.testing.assert_allclose(al.scale, 1.0)
    np.testing.assert_allclose(np.linalg.det(al.rotation), 1.0)
    np.testing.assert_allclose(al.apply(moved), al.vertices, atol=1e-12)


def test_procrustes_with_scale_and_float32():
    rng = np.random.default_rng(0)
    ref = _template(rng)
    rot, trans = _random_rigid(rng, 4)
    s = np.array([0.5, 0.9, 1.0, 1.7])
    moved = s[:, None, None] * (ref @ rot.transpose(0, 2, 1)) + trans[:, None, :]
    al = procrustes_align(moved, ref, scale=True)
    np.testing.assert_allclose(al.scale, 1 / s, rtol=1e-10)
    np.testing.assert_allclose(al.vertices, np.broadcast_to(ref, moved.shape), atol=1e-10)
    no_scale = procrustes_align(moved, ref)
    np.testing.assert_allclose(no_scale.scale, 1.0)
    np.testing.assert_allclose(no_scale.rotation, al.rotation, atol=1e-10)  # same rotation
    al32 = procrustes_align(moved.astype(np.float32), ref, scale=True)
    assert al32.vertices.dtype == np.float32
    np.testing.assert_allclose(al32.vertices, al.vertices, atol=1e-5)


def test_procrustes_proper_rotation_for_mirrored_input():
    rng = np.random.default_rng(2)
    ref = _template(rng)
    mirrored = ref * np.array([-1.0, 1.0, 1.0])
    al = procrustes_align(mirrored[None], ref)
    np.testing.assert_allclose(np.linalg.det(al.rotation), 1.0)


def test_procrustes_rejects_bad_shapes():
    with pytest.raises(ValueError):
        procrustes_align(np.zeros((V, 3)), np.zeros((V, 3)))
    with pytest.raises(ValueError):
        procrustes_align(np.zeros((2, V, 3)), np.zeros((V + 1, 3)))


# ---- Fit, encode, decode ---------------------------------------------------------------------


def test_components_orthonormal(model, plain_model):
    for m in (model, plain_model):
        c = m.components.astype(np.float64)
        np.testing.assert_allclose(c @ c.T, np.eye(m.n_components), atol=1e-5)
        assert m.components.dtype == np.float32 and m.mean.dtype == np.float32
        assert m.faces.dtype == np.int32


def test_roundtrip_in_span(data, plain_model):
    meshes, _, _ = data
    m = plain_model
    np.testing.assert_allclose(m.decode(m.encode(meshes)), meshes, atol=2e-6)
    mean = m.mean[None].astype(np.float64)
    np.testing.assert_allclose(m.decode(m.encode(mean)), mean, atol=1e-6)
    np.testing.assert_allclose(m.encode(mean), 0.0, atol=1e-6)
    np.testing.assert_allclose(m.decode(np.zeros((1, 0))), mean, atol=0)
    np.testing.assert_allclose(reconstruction_error(m, meshes), 0.0, atol=2e-6)


def test_roundtrip_model_span(model):
    rng = np.random.default_rng(5)
    coeffs = rng.standard_normal((7, model.n_components)) * model.std
    meshes = model.decode(coeffs)
    assert meshes.shape == (7, V, 3) and meshes.dtype == np.float64
    np.testing.assert_allclose(model.encode(meshes), coeffs, atol=1e-6)
    np.testing.assert_allclose(model.decode(model.encode(meshes)), meshes, atol=1e-6)


def test_decode_accepts_fewer_coefficients(model):
    rng = np.random.default_rng(0)
    coeffs = rng.standard_normal((3, 4)).astype(np.float32) * model.std[:4]
    padded = np.concatenate([coeffs, np.zeros((3, model.n_components - 4), np.float32)], axis=1)
    out = model.decode(coeffs)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, model.decode(padded), atol=1e-6)
    np.testing.assert_allclose(model.encode(out, n_components=4), coeffs, atol=1e-5)
    with pytest.raises(ValueError):
        model.decode(np.zeros((1, model.n_components + 1)))


def test_std_matches_encoded_training_set(data, model, plain_model):
    meshes, _, _ = data
    np.testing.assert_allclose(
        plain_model.encode(meshes).std(axis=0, ddof=1), plain_model.std, rtol=1e-5
    )
    # The aligned model: encode the training meshes after the same alignment.
    rng = np.random.default_rng(7)
    rot, trans = _random_rigid(rng, N)
    moved = meshes @ rot.transpose(0, 2, 1) + trans[:, None, :]
    coeffs = model.encode(moved, align=True)
    np.testing.assert_allclose(coeffs.std(axis=0, ddof=1), model.std, rtol=1e-3)
    np.testing.assert_allclose(coeffs.mean(axis=0), 0.0, atol=1e-4 * model.std[0])
    assert np.all(np.diff(model.std) <= 0)
    np.testing.assert_allclose(
        model.explained_variance_ratio, model.std.astype(np.float64) ** 2 / model.total_variance,
        rtol=1e-3,
    )


def test_batched_encode_equals_per_sample(data, model):
    meshes, _, _ = data
    batched = model.encode(meshes[:8])
    single = np.concatenate([model.encode(meshes[i : i + 1]) for i in range(8)])
    np.testing.assert_allclose(batched, single, rtol=1e-12, atol=1e-12)


def test_whiten_unwhiten(model):
    rng = np.random.default_rng(0)
    c = rng.standard_normal((4, 5))
    np.testing.assert_allclose(model.unwhiten(model.whiten(c)), c)
    np.testing.assert_allclose(model.whiten(c), c / model.std[:5])


def test_alignment_frees_components(data, model):
    """Rigidly moved meshes: the aligned model reconstructs them with few components; a model
    fitted without alignment wastes components on the rigid motion."""
    meshes, _, _ = data
    rng = np.random.default_rng(7)
    rot, trans = _random_rigid(rng, N)
    moved = meshes @ rot.transpose(0, 2, 1) + trans[:, None, :]
    unaligned = ShapeModel.fit(moved, FACES, "abc123", n_components=10, align=False)
    aligned_err = reconstruction_error(model, moved)
    unaligned_err = reconstruction_error(unaligned, moved)
    assert aligned_err.shape == (N,)
    assert aligned_err.mean() < 1e-4  # rank-6 data + small residual rotations
    assert unaligned_err.mean() > 10 * aligned_err.mean()
    errs = [reconstruction_error(model, moved, k).mean() for k in (1, 3, 6)]
    assert errs[0] > errs[1] > errs[2]


def test_rank_deficient_request_is_clipped(data, caplog):
    meshes, _, _ = data
    with caplog.at_level(logging.WARNING, logger="bodyshape.shape.pca"):
        m = ShapeModel.fit(meshes, FACES, "h", n_components=20, align=False)
    assert m.n_components == RANK
    assert "reduced" in caplog.text
    np.testing.assert_allclose(m.cumulative_variance[RANK - 1], 1.0, atol=1e-6)
    assert m.components_for(0.99) <= RANK


def test_randomized_solver_matches_exact(data):
    meshes, _, _ = data
    rng = np.random.default_rng(4)
    noisy = meshes + rng.normal(scale=1e-4, size=meshes.shape)
    exact = ShapeModel.fit(noisy, FACES, "h", n_components=8, solver="exact")
    rand = ShapeModel.fit(noisy, FACES, "h", n_components=8, solver="randomized",
                          rng=np.random.default_rng(0))
    np.testing.assert_allclose(rand.std, exact.std, rtol=1e-4)
    np.testing.assert_allclose(rand.cumulative_variance[:8], exact.cumulative_variance[:8],
                               rtol=1e-4)
    # Same components (signs are fixed deterministically).
    np.testing.assert_allclose(np.abs(np.sum(rand.components * exact.components, axis=1)), 1.0,
                               atol=1e-4)
    np.testing.assert_allclose(rand.mean, exact.mean, atol=1e-7)


def test_fit_validates_inputs(data):
    meshes, _, _ = data
    with pytest.raises(ValueError, match="sex"):
        ShapeModel.fit(meshes, FACES, "h", sexes=["x"] * N)
    with pytest.raises(ValueError):
        ShapeModel.fit(meshes, FACES, "h", sexes=["male"] * (N - 1))
    with pytest.raises(ValueError):
        ShapeModel.fit(meshes[:1], FACES, "h")
    with pytest.raises(ValueError):
        ShapeModel.fit(meshes[:, :, :2], FACES, "h")


def test_fit_is_deterministic(data):
    meshes, _, sexes = data
    a = ShapeModel.fit(meshes, FACES, "h", n_components=5, sexes=sexes, n_mixture=2,
                       rng=np.random.default_rng(11))
    b = ShapeModel.fit(meshes, FACES, "h", n_components=5, sexes=sexes, n_mixture=2,
                       rng=np.random.default_rng(11))
    assert a.model_hash == b.model_hash
    np.testing.assert_array_equal(a.mixture.means, b.mixture.means)


# ---- Sampling --------------------------------------------------------------------------------


def test_sampling_reproducible(model):
    for method in ("gaussian", "per-sex", "gmm"):
        a = model.sample(20, np.random.default_rng(42), method=method)
        b = model.sample(20, np.random.default_rng(42), method=method)
        c = model.sample(20, np.random.default_rng(43), method=method)
        np.testing.assert_array_equal(a.coeffs, b.coeffs)
        np.testing.assert_array_equal(a.vertices, b.vertices)
        assert a.sex == b.sex
        assert not np.allclose(a.coeffs, c.coeffs)


def test_gaussian_sample_statistics(model):
    s = model.sample(5000, np.random.default_rng(0))
    assert s.coeffs.shape == (5000, model.n_components) and s.coeffs.dtype == np.float32
    assert s.vertices.shape == (5000, V, 3) and s.sex is None
    np.testing.assert_allclose(s.coeffs.std(axis=0), model.std, rtol=0.05)
    np.testing.assert_allclose(s.coeffs.mean(axis=0), 0.0, atol=0.05 * model.std[0])
    np.testing.assert_allclose(s.vertices, model.decode(s.coeffs), atol=1e-6)


def test_per_sex_sampling(model):
    stats = model.coeff_stats
    assert stats.sexes == ("female", "male")
    assert list(stats.counts) == [40, 19]  # one mesh has sex None
    s = model.sample(300, np.random.default_rng(0), method="per-sex")
    assert s.coeffs.shape == (300, model.n_components) and s.vertices.shape == (300, V, 3)
    assert set(s.sex) == {"female", "male"} and len(s.sex) == 300
    forced = model.sample(2000, np.random.default_rng(0), method="per-sex", sex="male")
    assert forced.sex == ("male",) * 2000
    mean_w = model.whiten(forced.coeffs.astype(np.float64)).mean(axis=0)
    np.testing.assert_allclose(mean_w, stats.means[1], atol=0.15)
    with pytest.raises(ValueError):
        model.sample(3, np.random.default_rng(0), method="per-sex", sex="other")
    with pytest.raises(ValueError):
        model.sample(3, np.random.default_rng(0), method="gaussian", sex="male")


def test_gmm_sampling(model):
    mix = model.mixture
    assert mix.weights.shape == (2,) and mix.means.shape == (2, model.n_components)
    assert mix.covariances.shape == (2, model.n_components, model.n_components)
    np.testing.assert_allclose(mix.weights.sum(), 1.0, rtol=1e-6)
    s = model.sample(50, np.random.default_rng(0), method="gmm")
    assert s.coeffs.shape == (50, model.n_components) and s.vertices.shape == (50, V, 3)
    assert s.sex is None


def test_sampling_without_stats_raises(plain_model):
    with pytest.raises(ValueError, match="per-sex"):
        plain_model.sample(2, np.random.default_rng(0), method="per-sex")
    with pytest.raises(ValueError, match="mixture"):
        plain_model.sample(2, np.random.default_rng(0), method="gmm")
    with pytest.raises(ValueError):
        plain_model.sample(2, np.random.default_rng(0), method="uniform")


# ---- Files and summary ----------------------------------------------------------------------


def _assert_same_model(a: ShapeModel, b: ShapeModel):
    for name in ("mean", "components", "std", "explained_variance_ratio",
                 "cumulative_variance", "faces"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype
        np.testing.assert_array_equal(x, y)
    for name in ("template_hash", "landmark_names", "sources", "n_training", "total_variance",
                 "aligned", "align_scale", "model_hash"):
        assert getattr(a, name) == getattr(b, name), name
    for name in ("coeff_stats", "mixture"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None)
        if x is not None:
            np.testing.assert_array_equal(x.means, y.means)
            np.testing.assert_array_equal(x.covariances, y.covariances)
    if a.coeff_stats is not None:
        assert a.coeff_stats.sexes == b.coeff_stats.sexes
        np.testing.assert_array_equal(a.coeff_stats.counts, b.coeff_stats.counts)
    if a.mixture is not None:
        np.testing.assert_array_equal(a.mixture.weights, b.mixture.weights)


def test_save_load_roundtrip(model, plain_model, tmp_path):
    for m, name in ((model, "full.npz"), (plain_model, "plain.npz")):
        path = tmp_path / name.removesuffix(".npz") / name
        m.save(path)
        loaded = ShapeModel.load(path)
        _assert_same_model(m, loaded)
        assert [p.name for p in path.parent.iterdir()] == [name]  # no temporary left behind
    loaded = ShapeModel.load(tmp_path / "full" / "full.npz")
    for method in ("gaussian", "per-sex", "gmm"):
        np.testing.assert_array_equal(
            loaded.sample(5, np.random.default_rng(1), method).vertices,
            model.sample(5, np.random.default_rng(1), method).vertices,
        )
    assert len(model.model_hash) == 16


def test_load_errors_name_the_file(model, tmp_path):
    missing = tmp_path / "nope.npz"
    with pytest.raises(ValueError, match="nope.npz"):
        ShapeModel.load(missing)
    text = tmp_path / "text.npz"
    text.write_text("hello")
    with pytest.raises(ValueError, match="text.npz"):
        ShapeModel.load(text)
    npy = tmp_path / "array.npz"
    with open(npy, "wb") as f:
        np.save(f, np.zeros(3))
    with pytest.raises(ValueError, match="array.npz"):
        ShapeModel.load(npy)
    partial = tmp_path / "partial.npz"
    np.savez(partial, mean=model.mean)
    with pytest.raises(ValueError, match=r"partial\.npz.*missing keys"):
        ShapeModel.load(partial)
    # Wrong format version.
    good = tmp_path / "good.npz"
    model.save(good)
    with np.load(good) as d:
        arrays = dict(d)
    meta = json.loads(str(arrays["metadata"]))
    meta["format_version"] = FORMAT_VERSION + 1
    arrays["metadata"] = np.array(json.dumps(meta))
    future = tmp_path / "future.npz"
    np.savez(future, **arrays)
    with pytest.raises(ValueError, match=r"future\.npz.*version"):
        ShapeModel.load(future)


def test_summary(model):
    text = model.summary()
    assert "200 vertices" in text
    assert "components: 10" in text
    assert "components for 95%" in text and "components for 99%" in text
    assert model.model_hash in text and "abc123" in text
    assert "synthetic" in text
    assert "female 40" in text
    assert len(text.splitlines()) >= 6


def test_model_is_immutable(model):
    with pytest.raises(ValueError, match="read-only"):  # numpy's non-writeable array
        model.mean[0, 0] = 1.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        model.std = model.std * 2
    assert "ShapeModel(hash=" in repr(model)
    with pytest.raises(ValueError, match="JSON"):
        ShapeModel(model.mean, model.components, model.std, model.explained_variance_ratio,
                   model.cumulative_variance, model.faces, "h", sources={"x": object()})
