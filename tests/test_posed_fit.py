"""body.posed_fit: the vertex-to-vertex refit behind unposing, and the posed shape-prior fit
to a scan surface, on bodies of the shipped model (exact answers known)."""

import numpy as np
import pytest

from bodyshape.body.pose import POSE_NAMES
from bodyshape.body.posed_fit import PosedFit, PosedFitter
from bodyshape.shape.register import SurfaceSampler

P = {n: k for k, n in enumerate(POSE_NAMES)}
Y_UP = np.array([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]])  # Z-up -> Y-up


def _body(body, seed: int):
    """Rest vertices (V, 3) of a random body: all PCA coefficients drawn at their std."""
    rng = np.random.default_rng(seed)
    coeffs = rng.standard_normal(len(body.shape.std)) * body.shape.std
    comps = body.shape.components.astype(np.float64).reshape(len(coeffs), -1, 3)
    return body.shape.mean.astype(np.float64) + np.einsum("k,kvd->vd", coeffs, comps)


def _start(body, angles, translation, scale=1.0, rotation=Y_UP):
    """A rough fit to start from: the mean shape, the given angles and similarity."""
    n = body.shape.components.shape[0]
    return PosedFit(np.zeros((1, 3)), np.zeros((1, 3)), np.zeros(n), np.asarray(angles),
                    rotation, np.asarray(translation, np.float64), scale, 0.0, 0, (0.0,))


@pytest.mark.parametrize("arms_deg", [None, 80.0])
def test_refine_recovers_the_pose_and_unposing_gives_the_rest_body(body, arms_deg):
    """Known correspondences pin the pose: from angles a few degrees off, the refit finds
    them to a small fraction of a degree, and the unposed body is the rest body. A body in
    the rest pose comes back unchanged (the Adam refit left such a body ~4 mm off)."""
    rest = _body(body, 1)
    angles = body.rest_pose(1).angles[0].copy()
    if arms_deg is not None:
        angles[[P["arm_abduction_l"], P["arm_abduction_r"]]] = np.radians(arms_deg)
        angles[[P["elbow_bend_l"], P["elbow_bend_r"]]] = np.radians(-20.0)
        angles[P["spine_pitch"]] = np.radians(4.0)
    shift = np.array([0.3, -0.1, 1.2])
    scan = body.pose(rest, angles) @ Y_UP.T + shift
    off = angles + np.radians(np.resize([3.0, -2.0, 1.5], len(angles)))
    fitter = PosedFitter(body)
    start = _start(body, off, shift + 0.01, 1.02)
    fit = fitter.refine(start, scan)
    assert np.degrees(np.abs(fit.angles - angles)).max() < 0.1
    assert np.linalg.norm(fit.vertices - scan, axis=1).max() < 1e-3
    canonical = fitter.to_canonical(start, scan)
    canonical += rest.mean(0) - canonical.mean(0)  # (its place in the model frame is free)
    err = np.linalg.norm(canonical - rest, axis=1)
    assert err.mean() < 3e-4 and err.max() < 1.5e-3


def test_fit_surface_lays_the_body_on_a_posed_scan(body):
    """The posed shape-prior fit: from the mean shape with every angle 2 deg off (about
    what the Chamfer fit leaves) and 1.4 cm away, closest points alone bring every vertex
    to within a millimetre of a T-posed body of another shape."""
    rest = _body(body, 2)
    angles = body.rest_pose(1).angles[0].copy()
    angles[[P["arm_abduction_l"], P["arm_abduction_r"]]] = np.radians([88.0, 92.0])
    truth = body.pose(rest, angles) @ Y_UP.T
    sampler = SurfaceSampler.from_mesh(truth, body.faces)
    start = _start(body, angles + np.radians(2.0), np.array([0.01, 0.0, -0.01]))
    fitter = PosedFitter(body)
    before = np.linalg.norm(fitter.refine(start, truth).vertices - truth, axis=1).mean()
    fit = fitter.fit_surface(start, sampler.query, None)
    err = np.linalg.norm(fit.vertices - truth, axis=1)
    assert err.mean() < 1e-3 and np.median(err) < 5e-4
    assert before < 1e-3  # (the same body vertex to vertex: the model can reach it)
    # Landmarks at their true places keep it there.
    lms = {n: truth[i] for n, i in zip(body.template.landmark_names,
                                       body.template.landmark_indices)}
    with_lms = fitter.fit_surface(start, sampler.query, lms)
    assert np.linalg.norm(with_lms.vertices - truth, axis=1).mean() <= err.mean() + 2e-4
