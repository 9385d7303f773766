"""Fixtures shared by several test modules."""

import pytest

from bodyshape.shape.rig import load_rig
from bodyshape.shape.template import load_template


@pytest.fixture(scope="module")
def rig():
    return load_rig()


@pytest.fixture(scope="module")
def tpl():
    return load_template()


@pytest.fixture(scope="session")
def small_model_path(tmp_path_factory):
    """A 4-component shape model fitted on smooth variations of the template (no anny)."""
    import numpy as np

    from bodyshape.shape.pca import ShapeModel

    tpl = load_template()
    rng = np.random.default_rng(0)
    v = tpl.vertices
    bodies = []
    for _ in range(12):
        w = v * (1 + 0.05 * rng.standard_normal(3))
        w[:, 1] -= 0.02 * rng.standard_normal() * np.exp(-((v[:, 2] - 0.1) ** 2) / 0.01) \
            * (v[:, 1] < 0)
        bodies.append(w)
    model = ShapeModel.fit(np.stack(bodies).astype(np.float32), tpl.faces, tpl.hash,
                           n_components=4)
    path = tmp_path_factory.mktemp("model") / "model.npz"
    model.save(path)
    return path
