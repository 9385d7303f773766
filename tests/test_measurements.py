"""The full tape-measurement set: analytic shapes, the template, invariances."""

from dataclasses import fields

import numpy as np
import pytest
import trimesh

from bodyshape.measure import (
    MEASUREMENT_NAMES,
    Measurements,
    convex_perimeter,
    girth,
    limb_girth,
    limb_plane,
    measure_bodies,
    pick_loop,
    slice_loops,
)
from bodyshape.measure import _plane_basis  # to express the probe in the slice's plane

# Plausible adult ranges (cm) for the template, a mid-phenotype anny body.
RANGES = {
    "height_cm": (150, 200), "chest_cm": (70, 120), "waist_cm": (55, 110), "hip_cm": (75, 120),
    "neck_cm": (28, 50), "shoulder_width_cm": (30, 50), "arm_length_cm": (45, 75),
    "inseam_cm": (65, 95), "thigh_cm": (40, 75), "calf_cm": (25, 50), "bicep_cm": (20, 45),
    "wrist_cm": (12, 22),
}


@pytest.fixture(scope="module")
def template_measurements(tpl):
    return measure_bodies(tpl.vertices[None], tpl)


def _arrays(m: Measurements) -> np.ndarray:
    return np.stack([getattr(m, n) for n in MEASUREMENT_NAMES], -1)  # (B, 12)


def test_upright_cylinder_girth():
    r = 0.07
    cyl = trimesh.creation.cylinder(radius=r, height=0.6, sections=128)
    g = girth(np.asarray(cyl.vertices), np.asarray(cyl.faces), [0, 0, 0.05])
    assert g == pytest.approx(2 * np.pi * r, rel=5e-3)


@pytest.mark.parametrize("at", [0.5, 1.0])
def test_inclined_cylinder_limb_girth(at):
    r, tilt = 0.04, np.deg2rad(45)  # an A-pose upper arm: 45 degrees below horizontal
    cyl = trimesh.creation.cylinder(radius=r, height=0.8, sections=128)
    cyl.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2 + tilt, [0, 1, 0]))
    cyl.apply_translation([0.3, 0.0, 0.2])
    axis = np.array([np.cos(tilt), 0.0, -np.sin(tilt)])
    proximal = np.array([0.3, 0.0, 0.2]) - 0.2 * axis
    distal = proximal + 0.3 * axis
    v, f = np.asarray(cyl.vertices), np.asarray(cyl.faces)
    assert limb_girth(v, f, proximal, distal, at) == pytest.approx(2 * np.pi * r, rel=5e-3)
    # A horizontal tape around the same inclined cylinder would read an ellipse, ~22 % more.
    assert girth(v, f, proximal + at * (distal - proximal)) > 1.2 * 2 * np.pi * r


def _peanut_prism(r: float, d: float, n: int = 720):
    """A vertical prism over the union of two discs of radius r centred at (+-d, 0)."""
    phi = np.linspace(0, 2 * np.pi, n, endpoint=False)
    circle = r * np.stack([np.cos(phi), np.sin(phi)], -1)
    pts = np.concatenate([circle + [d, 0], circle - [d, 0]])
    outside = np.minimum(np.linalg.norm(pts - [d, 0], axis=1),
                         np.linalg.norm(pts + [d, 0], axis=1)) >= r - 1e-12
    ring = pts[outside][np.argsort(np.arctan2(pts[outside, 1], pts[outside, 0]))]
    m = len(ring)
    v = np.concatenate([np.c_[ring, np.full(m, -0.5)], np.c_[ring, np.full(m, 0.5)]])
    i, j = np.arange(m), (np.arange(m) + 1) % m
    f = np.concatenate([np.stack([i, j, i + m], -1), np.stack([i + m, j, j + m], -1)])
    return v, f


def test_keep_side_splits_touching_thighs():
    r, d = 0.08, 0.06  # two "thighs" merged into one section
    v, f = _peanut_prism(r, d)
    assert len(slice_loops(v, f, [0, 0, 0], [0, 0, 1])) == 1
    whole = girth(v, f, [d, 0, 0])
    assert whole == pytest.approx(2 * np.pi * r + 4 * d, rel=1e-3)  # tape around both
    theta = np.arccos(d / r)  # half-angle of the arc cut off by the midline x = 0
    one = r * (2 * np.pi - 2 * theta) + 2 * r * np.sin(theta)
    for sign in (1, -1):
        half = girth(v, f, [sign * d, 0, 0], keep_side=([0, 0, 0], [sign, 0, 0]))
        assert half == pytest.approx(one, rel=1e-3)
    # A split plane the loop does not reach changes nothing.
    assert girth(v, f, [d, 0, 0], keep_side=([-1, 0, 0], [1, 0, 0])) == pytest.approx(whole)


def test_names_and_dicts(template_measurements):
    assert tuple(f.name for f in fields(Measurements)) == MEASUREMENT_NAMES
    (row,) = template_measurements.as_dicts()
    assert tuple(row) == MEASUREMENT_NAMES
    for name, value in row.items():
        assert isinstance(value, float) and value == round(value, 1)
        assert value == pytest.approx(getattr(template_measurements, name)[0], abs=0.05)


def test_template_in_human_ranges(template_measurements):
    for name, (lo, hi) in RANGES.items():
        value = getattr(template_measurements, name)
        assert value.shape == (1,) and value.dtype == np.float64
        assert lo < value[0] < hi, (name, value[0])
    m = template_measurements
    assert m.inseam_cm[0] < 0.55 * m.height_cm[0]
    assert m.wrist_cm[0] < m.bicep_cm[0] < m.thigh_cm[0] < m.hip_cm[0]
    assert m.calf_cm[0] < m.thigh_cm[0] and m.waist_cm[0] < m.hip_cm[0]


def test_batched_equals_per_sample_and_scales(tpl):
    v = tpl.vertices
    warped = v.copy()
    warped[:, 1] *= 1 + 0.3 * v[:, 0]  # an asymmetric body, so samples differ
    batch = np.stack([v, 1.3 * v, warped])
    m = _arrays(measure_bodies(batch, tpl))
    for b in range(len(batch)):
        np.testing.assert_array_equal(m[b], _arrays(measure_bodies(batch[b:b + 1], tpl))[0])
    np.testing.assert_allclose(m[1], 1.3 * m[0], rtol=1e-6)
    assert len(measure_bodies(batch[:0], tpl).as_dicts()) == 0
    with pytest.raises(ValueError):
        measure_bodies(v, tpl)  # one body must still come as a batch of one


def test_mirrored_body_measures_the_same(tpl):
    v = tpl.vertices.copy()
    v[:, 1] *= 1 + 0.3 * v[:, 0]  # left side deeper than the right: mirroring changes it
    v[:, 2] += 0.01 * np.tanh(v[:, 0] / 0.1)
    mirrored = v * np.array([-1.0, 1.0, 1.0])  # landmark labels now sit on the other side
    a, b = (_arrays(measure_bodies(x[None], tpl))[0] for x in (v, mirrored))
    np.testing.assert_allclose(b, a, rtol=1e-2)


@pytest.mark.parametrize("side", ["l", "r"])
def test_arm_slices_pick_the_arm_not_the_torso(tpl, template_measurements, side):
    lm = {n: tpl.vertices[i] for n, i in zip(tpl.landmark_names, tpl.landmark_indices)}
    elbow = (lm[f"elbow_lateral_{side}"] + lm[f"elbow_medial_{side}"]) / 2
    wrist = (lm[f"radial_styloid_{side}"] + lm[f"ulnar_styloid_{side}"]) / 2
    for (prox, dist, at), name in [((lm[f"acromion_{side}"], elbow, 0.5), "bicep_cm"),
                                   ((elbow, wrist, 1.0), "wrist_cm")]:
        origin, normal = limb_plane(prox, dist, at)
        loops = slice_loops(tpl.vertices, tpl.faces, origin, normal)
        chosen = pick_loop(loops, (origin - origin) @ _plane_basis(normal).T)
        perimeters = [convex_perimeter(loop) for loop in loops]
        # The inclined plane also cuts the torso; the arm's loop is a fraction of it.
        assert len(loops) >= 2 and convex_perimeter(chosen) < 0.5 * max(perimeters)
        # The measurement reads that arm loop (left and right are mirror images here).
        assert 100 * convex_perimeter(chosen) == pytest.approx(
            getattr(template_measurements, name)[0], rel=1e-6)


@pytest.mark.parametrize("side", ["l", "r"])
def test_calf_band_hull_equals_the_general_girth(tpl, side):
    """The calf scan's shortcut (hull of this leg's band) equals the loop-searching girth."""
    from bodyshape.measure import _joint_centres, _landmarks, _side_direction, band_hull_girth

    v = tpl.vertices.astype(np.float64)
    lm = {k: p[0] for k, p in _landmarks(v[None], tpl).items()}
    c = _joint_centres(lm, side)
    knee, ankle = c["knee"], c["ankle"]
    this_side = (v[tpl.faces].mean(axis=1) - lm["crotch"]) @ _side_direction(lm, side) > 0
    for f in np.linspace(0.15, 0.85, 6):
        z = ankle[2] + f * (knee[2] - ankle[2])
        axis_pt = ankle + f * (knee - ankle)
        assert band_hull_girth(v, tpl.faces[this_side], z) == pytest.approx(
            girth(v, tpl.faces, axis_pt), abs=1e-12)
