"""The shape model shipped in the package matches the shipped template."""

import numpy as np

from bodyshape.assets import DEFAULT_SHAPE_MODEL
from bodyshape.shape.pca import ShapeModel
from bodyshape.shape.template import load_template


def test_shipped_model_matches_template():
    t = load_template()
    m = ShapeModel.load(DEFAULT_SHAPE_MODEL)
    assert m.template_hash == t.hash
    assert tuple(m.landmark_names) == t.landmark_names
    assert m.n_components == 50 and m.n_vertices == len(t.vertices)
    np.testing.assert_array_equal(m.faces, t.faces)
    assert m.n_training >= 5000
    # The mean body is a plausible adult in the canonical frame (Z up, facing -Y).
    mean = m.decode(np.zeros((1, 5)))[0]
    assert 1.55 < np.ptp(mean[:, 2]) < 1.85
    sellion = t.landmark_index("sellion")
    assert mean[sellion, 1] < mean[:, 1].mean()
    np.testing.assert_allclose(m.components @ m.components.T, np.eye(50), atol=1e-4)
    assert "PCA shape model" in m.summary()
