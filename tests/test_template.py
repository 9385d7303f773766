"""The shipped template mesh and its 72 landmarks (fast, no anny).

Coordinates are meters in the template frame: Z up, subject facing -Y, subject's left at +X.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import trimesh

from bodyshape.shape.template import N_TEMPLATE_VERTICES, load_landmark_table, load_template

ROOT = Path(__file__).resolve().parents[1]
MIRROR_TOL_M = 0.005


@pytest.fixture(scope="module")
def tpl():
    return load_template()


def pos(tpl, name: str) -> np.ndarray:
    return tpl.vertices[tpl.landmark_index(name)]


def test_template_loads(tpl):
    assert tpl.vertices.shape == (N_TEMPLATE_VERTICES, 3)
    assert tpl.faces.shape == (26692, 3)
    assert np.isfinite(tpl.vertices).all()
    height = np.ptp(tpl.vertices[:, 2])
    assert 1.4 < height < 2.0  # meters
    assert len(tpl.hash) == 16


def test_template_watertight(tpl):
    mesh = trimesh.Trimesh(tpl.vertices, tpl.faces, process=False)
    assert mesh.is_watertight
    assert mesh.volume > 0  # outward-facing triangles


def test_landmark_table():
    table = load_landmark_table()
    assert len(table) == 72
    names = [r["name"] for r in table]
    assert len(set(names)) == 72
    idx = [r["vertex"] for r in table]
    assert all(isinstance(i, int) and 0 <= i < N_TEMPLATE_VERTICES for i in idx)
    assert len(set(idx)) == 72
    assert all(r["description"].strip() for r in table)


def test_left_right_pairs_mirror(tpl):
    names = set(tpl.landmark_names)
    left = sorted(n for n in names if n.endswith("_l"))
    right = sorted(n for n in names if n.endswith("_r"))
    assert [n[:-2] for n in left] == [n[:-2] for n in right]
    assert len(left) == 29
    for n in left:
        pl, pr = pos(tpl, n), pos(tpl, n[:-2] + "_r")
        assert pl[0] > 0, n
        assert pr[0] < 0, n
        assert np.linalg.norm(pr - pl * [-1, 1, 1]) < MIRROR_TOL_M, n


def test_midline_landmarks_on_midline(tpl):
    for n in tpl.landmark_names:
        if not n.endswith(("_l", "_r")):
            assert abs(pos(tpl, n)[0]) < MIRROR_TOL_M, n


def test_vertical_order(tpl):
    z = {n: pos(tpl, n)[2] for n in tpl.landmark_names}
    chains = [
        ["vertex", "glabella", "sellion", "tragion_l", "menton", "neck_front", "suprasternale",
         "substernale", "omphalion", "crotch", "patella_l", "calf_back_l", "malleolus_lateral_l"],
        ["vertex", "opisthocranion", "neck_back", "cervicale", "scapula_inferior_angle_l",
         "waist_back", "psis_l", "buttock_l"],
        ["acromion_l", "axilla_front_l", "elbow_lateral_l", "radial_styloid_l", "dactylion_l"],
        ["bust_point_l", "rib10_l", "waist_l", "iliac_crest_l", "asis_l", "trochanter_l",
         "thigh_front_l", "knee_lateral_l", "malleolus_medial_l", "malleolus_lateral_l"],
        ["knee_medial_l", "calf_back_l", "heel_l"],
    ]
    for chain in chains:
        for upper, lower in zip(chain, chain[1:]):
            assert z[upper] > z[lower], (upper, lower)
    assert min(z.values()) > tpl.vertices[:, 2].min() - 1e-9
    assert z["toe_tip_l"] < z["malleolus_lateral_l"]


def test_front_back_and_side_order(tpl):
    y = {n: pos(tpl, n)[1] for n in tpl.landmark_names}
    x = {n: pos(tpl, n)[0] for n in tpl.landmark_names}
    # front (-Y) before back (+Y)
    for front, back in [("bust_point_l", "scapula_inferior_angle_l"), ("waist_front", "waist_back"),
                        ("neck_front", "neck_back"), ("axilla_front_l", "axilla_back_l"),
                        ("asis_l", "psis_l"), ("patella_l", "calf_back_l"), ("toe_tip_l", "heel_l"),
                        ("sellion", "opisthocranion"), ("suprasternale", "cervicale")]:
        assert y[front] < y[back], (front, back)
    # lateral (larger x on the left side) vs medial
    for lat, med in [("knee_lateral_l", "knee_medial_l"), ("malleolus_lateral_l", "malleolus_medial_l"),
                     ("elbow_lateral_l", "elbow_medial_l"), ("acromion_l", "neck_base_side_l"),
                     ("neck_base_side_l", "neck_side_l"), ("dactylion_l", "elbow_lateral_l")]:
        assert x[lat] > x[med], (lat, med)


def test_make_landmarks_reproduces_table():
    """tools/make_landmarks.py recomputes exactly the shipped table (names, order, vertices)."""
    script = ROOT / "tools" / "make_landmarks.py"
    if not script.exists():
        pytest.skip("tools/ not present")
    spec = importlib.util.spec_from_file_location("make_landmarks", script)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rows = mod.build()
    table = load_landmark_table()
    assert [(n, i) for n, i, _ in rows] == [(r["name"], r["vertex"]) for r in table]
