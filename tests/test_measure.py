"""Tape measurements: analytic shapes and the template."""

import numpy as np
import pytest
import trimesh

from bodyshape.measure import body_stats, convex_perimeter, girth, mesh_volume, slice_loops
from bodyshape.shape.template import load_template


def test_cylinder_girth_matches_analytic():
    r = 0.15
    cyl = trimesh.creation.cylinder(radius=r, height=1.0, sections=256)
    g = girth(np.asarray(cyl.vertices), np.asarray(cyl.faces), [0, 0, 0.1])
    # A 256-gon inscribed in the circle: perimeter = 2 n r sin(pi / n).
    assert g == pytest.approx(2 * 256 * r * np.sin(np.pi / 256), rel=1e-9)
    assert g == pytest.approx(2 * np.pi * r, rel=1e-4)


def test_tilted_plane_on_cylinder_gives_ellipse():
    r = 0.1
    cyl = trimesh.creation.cylinder(radius=r, height=2.0, sections=512)
    tilt = np.deg2rad(30)
    g = girth(np.asarray(cyl.vertices), np.asarray(cyl.faces), [0, 0, 0],
              normal=[np.sin(tilt), 0, np.cos(tilt)])
    a, b = r / np.cos(tilt), r  # ellipse semi-axes
    h = ((a - b) / (a + b)) ** 2
    ramanujan = np.pi * (a + b) * (1 + 3 * h / (10 + np.sqrt(4 - 3 * h)))
    assert g == pytest.approx(ramanujan, rel=1e-4)


def test_girth_picks_the_loop_around_the_probe():
    a = trimesh.creation.cylinder(radius=0.1, height=1.0, sections=128)
    b = trimesh.creation.cylinder(radius=0.03, height=1.0, sections=128)
    b.apply_translation([0.5, 0, 0])
    m = trimesh.util.concatenate([a, b])
    v, f = np.asarray(m.vertices), np.asarray(m.faces)
    assert len(slice_loops(v, f, [0, 0, 0], [0, 0, 1])) == 2
    assert girth(v, f, [0, 0, 0]) == pytest.approx(2 * np.pi * 0.1, rel=1e-3)
    assert girth(v, f, [0.5, 0, 0]) == pytest.approx(2 * np.pi * 0.03, rel=1e-3)
    assert girth(v, f, [0, 0, 5.0]) == 0.0


def test_convex_perimeter_bridges_concavities():
    square_with_notch = np.array([[0, 0], [1, 0], [1, 1], [0.5, 0.5], [0, 1]], float)
    assert convex_perimeter(square_with_notch) == pytest.approx(4.0)


def test_volume_of_box():
    box = trimesh.creation.box([0.2, 0.3, 0.5])
    assert mesh_volume(np.asarray(box.vertices), np.asarray(box.faces)) == pytest.approx(0.03)


def test_template_stats_plausible_and_batched():
    t = load_template()
    v = np.stack([t.vertices, t.vertices * 1.1])
    s = body_stats(v, t)
    assert 1.5 < s.stature[0] < 1.8
    assert 0.6 < s.waist[0] < 1.0 and 0.8 < s.hip[0] < 1.2 and 0.8 < s.chest[0] < 1.2
    np.testing.assert_allclose(s.waist[1], 1.1 * s.waist[0], rtol=1e-6)
    one = body_stats(v[1:], t)
    np.testing.assert_allclose(one.hip, s.hip[1:])
    assert s.volume[1] == pytest.approx(1.1**3 * s.volume[0])
