"""Garments, per-view poses and their specs (no anny; the shipped template and shape model)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from bodyshape.body import PoseSpec
from bodyshape.body.pose import FRONT_PHOTO_POSE, SIDE_PHOTO_POSE
from bodyshape.render.camera import Camera
from bodyshape.render.raster import silhouette
from bodyshape.synth.garments import (KINDS, LAYERS, GarmentSpec, Outfit, draw_outfit, dress,
                                      ellipsoid, regions)
from bodyshape.synth.generate import SynthSpec, make_sample, make_sample_frames


def _only(layer: str, kind: str) -> GarmentSpec:
    """A spec that always draws ``kind`` for ``layer`` (others at their defaults)."""
    p = [0.0] * len(KINDS[layer])
    p[KINDS[layer].index(kind)] = 1.0
    return dataclasses.replace(GarmentSpec(), **{layer: tuple(p)})


def test_specs_refuse_bad_values_in_one_line():
    for bad in ({"top": (0.5, 0.5)}, {"hair": (0.5, 0.5, 0.5, -0.5)}, {"shoes": (0.2, 0.2)},
                {"bottom": ("a", 1, 0, 0)}):
        with pytest.raises(ValueError, match="GarmentSpec") as e:
            GarmentSpec(**bad)
        assert "\n" not in str(e.value)
    for bad in ({"knee_bend_deg": (5.0, 0.0)}, {"head_pitch_deg": (0.0, 400.0)},
                {"arm_swing_deg": 3.0}, {"elbow_bend_deg": (float("nan"), 1.0)}):
        with pytest.raises(ValueError, match="PoseSpec") as e:
            PoseSpec(**bad)
        assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match="unknown"):
        GarmentSpec.from_dict({"hat": (1.0,)})


def test_spec_json_round_trip_and_old_datasets():
    spec = SynthSpec(garments=_only("bottom", "skirt"), shared_pose=True)
    assert SynthSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    assert SynthSpec.from_dict(json.loads(json.dumps(SynthSpec.clean().to_dict()))) \
        == SynthSpec.clean()
    # A dataset config written before per-view poses: one "pose" with one head range.
    old = SynthSpec.clean().to_dict()
    pose = old.pop("front_pose")
    for k in ("side_pose", "shared_pose", "garments"):
        old.pop(k)
    head = pose.pop("head_pitch_deg")
    pose.pop("head_roll_deg"), pose.pop("head_yaw_deg")
    old["pose"] = {**pose, "head_deg": head}
    assert SynthSpec.from_dict(json.loads(json.dumps(old))) == SynthSpec.clean()


def test_outfits_follow_the_spec(body):
    rng = np.random.default_rng(0)
    spec = GarmentSpec()
    drawn = np.stack([draw_outfit(rng, spec).codes() for _ in range(4000)])
    for j, layer in enumerate(LAYERS):
        freq = np.bincount(drawn[:, j], minlength=len(KINDS[layer])) / len(drawn)
        np.testing.assert_allclose(freq, getattr(spec, layer), atol=0.03)
    assert np.bincount(drawn[:, 0]).argmax() == KINDS["top"].index("tight")


def test_regions_cover_the_right_body_parts(body):
    reg = regions(body)
    v = body.template.vertices
    arm = reg.arm_t >= 0
    assert np.all(np.abs(v[arm, 0]) > 0.14)  # arms are lateral
    assert reg.arm_t.max() <= 3 and reg.leg_t.max() <= 3
    leg = reg.leg_t >= 0
    assert np.all(v[leg, 2] < 0.01)  # legs below the hips
    assert np.all(v[reg.scalp, 2] > body.joints(v.astype(float))[3, 2])  # above the skull base


def test_garments_widen_the_body_and_never_shrink_it(body):
    rest = body.shape.mean.astype(np.float64)
    rng = np.random.default_rng(1)
    for layer, kind in (("top", "loose"), ("bottom", "trousers"), ("hair", "bun"),
                        ("shoes", "shoes")):
        outfit = draw_outfit(rng, _only(layer, kind))
        d = dress(body, rest, outfit, rng)
        assert (d.offset >= 0).all() and d.offset.max() < 0.08
        assert np.allclose(np.linalg.norm(d.normals, axis=1), 1.0)
        moved = np.linalg.norm(d.dressed_rest(rest) - rest, axis=1)
        np.testing.assert_allclose(moved, d.offset, atol=1e-12)
    tight = dress(body, rest, Outfit(0, 0, 0, 0), np.random.default_rng(2))
    assert tight.offset.max() <= 0.025 and len(tight.extra_vertices) == 0


def test_ellipsoid_is_closed_and_outward():
    v, f = ellipsoid((1.0, 2.0, 3.0), (0.1, 0.2, 0.3))
    edges = np.sort(np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]), axis=1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    assert (counts == 2).all()  # closed: every edge shared by two triangles
    tri = v[f] - np.array([1.0, 2.0, 3.0])
    volume = np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6
    assert volume > 0  # outward winding
    assert volume == pytest.approx(4 / 3 * np.pi * 0.1 * 0.2 * 0.3, rel=0.25)


def test_skirt_bridges_the_legs_in_the_front_view(body):
    """The gap between the legs below the crotch is filled by a skirt."""
    spec = dataclasses.replace(SynthSpec.clean(), garments=_only("bottom", "skirt"))
    naked_spec = SynthSpec.clean()
    a = make_sample_frames(body, 0, 4, spec)
    b = make_sample_frames(body, 0, 4, naked_spec)
    # Same pose, yaw and camera streams: the dressed frame covers the naked one.
    assert np.array_equal(a.sample.pose_angles, b.sample.pose_angles)
    cam = Camera.from_dict(a.sample.front_camera)
    rest = body.shape.decode(a.sample.coeffs[None].astype(np.float64))[0]
    naked = silhouette(body.turn(body.pose(rest, a.sample.pose_angles[0].astype(float)),
                                 float(a.sample.yaw[0])), body.faces, cam, closed=True)
    assert (naked & ~a.front).sum() <= 0.01 * naked.sum()
    rows = np.flatnonzero(naked.any(1))
    crotch_band = slice(int(rows[0] + 0.55 * np.ptp(rows)), int(rows[0] + 0.65 * np.ptp(rows)))
    gaps_naked = _inner_gaps(naked[crotch_band])
    gaps_dressed = _inner_gaps(a.front[crotch_band])
    assert gaps_naked > 0 and gaps_dressed < 0.2 * gaps_naked


def _inner_gaps(band: np.ndarray) -> int:
    """Background pixels between the leftmost and rightmost foreground pixel of each row."""
    total = 0
    for row in band:
        cols = np.flatnonzero(row)
        if len(cols):
            total += int((~row[cols[0]:cols[-1] + 1]).sum())
    return total


def test_per_view_poses_follow_their_specs(body):
    spec = SynthSpec()
    angles = np.stack([make_sample(body, i, 0, spec).pose_angles for i in range(12)])
    for v, pose in enumerate((FRONT_PHOTO_POSE, SIDE_PHOTO_POSE)):
        lo, hi = pose.ranges_rad().T
        assert (angles[:, v] >= lo - 1e-6).all() and (angles[:, v] <= hi + 1e-6).all()
    assert not np.allclose(angles[:, 0], angles[:, 1])
    shared = np.stack([make_sample(body, i, 0, dataclasses.replace(spec, shared_pose=True))
                       .pose_angles for i in range(3)])
    assert np.array_equal(shared[:, 0], shared[:, 1])


def test_evaluation_groups_dressed_test_sets_by_outfit():
    from bodyshape.evaluate import METRICS, markdown, summarize

    n = 6
    per = {m: np.arange(n, dtype=float) for m in METRICS}
    per.update(bmi=np.full(n, 22.0), sex=np.zeros(n, np.int8))
    per["garments"] = np.array([[0, 0, 0, 1]] * 4 + [[2, 3, 1, 0]] * 2, np.int8)
    rep = summarize(per)
    assert rep["by_outfit"]["top: tight"]["n"] == 4
    assert rep["by_outfit"]["top: loose"]["chest_mm"] == 4.5
    assert rep["by_outfit"]["bottom: skirt"]["n"] == 2 and "top: tshirt" not in rep["by_outfit"]
    assert "top: tight" in markdown(rep)
    per["garments"][:] = -1  # naked test sets: no outfit groups
    assert "by_outfit" not in summarize(per)
