"""Synthetic dataset generation: determinism, resume, parts, reading, streaming, augmentation.

Tiny on purpose (a few samples on a 64 x 64 canvas, 256 px frames): everything is a pure
function of (model, spec, seed, index), so small runs test the same code paths as big ones.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from conftest import dataset_files as _files

from bodyshape.body import POSE_NAMES, BodyModel
from bodyshape.calibrate import CalibrationSpec
from bodyshape.dataset.shard_format import ShardError, read_shard, shard_arrays
from bodyshape.dataset.stream import Augment, ShardDataset, augment_mask, held_out_split
from bodyshape.render.camera import CameraSpec
from bodyshape.shape.pca import ShapeModel
from bodyshape.synth.generate import SynthSpec, make_sample
from bodyshape.synth.shards import finalize, write_dataset

SPEC = SynthSpec(camera=CameraSpec(long_side=256), calibration=CalibrationSpec(64, 64),
                 poses_per_shape=2)
N, SHARD = 6, 2  # 3 shards


@pytest.fixture(scope="module")
def model_path(small_model_path):
    return small_model_path


def _write(model_path, out, workers=1, **kw):
    return write_dataset(model_path, out, N, 5, SPEC, workers=workers, shard_size=SHARD,
                         progress=False, **kw)


@pytest.fixture(scope="module")
def reference(model_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "data"
    summary = _write(model_path, out, workers=1)
    assert summary == {"written": 3, "skipped": 0, "shards": 3,
                       "manifest": str(out / "manifest.json")}
    return out


def test_sample_is_a_pure_function_of_seed_and_index(model_path):
    body = BodyModel.load(model_path)
    a, b = make_sample(body, 3, 1, SPEC), make_sample(body, 3, 1, SPEC)
    assert np.array_equal(a.front, b.front) and np.array_equal(a.side, b.side)
    assert a.front.shape == (64, 64) and a.coeffs.shape == (4,) and a.sex is None
    # poses_per_shape=2: samples 2 and 3 share a body, not a pose.
    c = make_sample(body, 2, 1, SPEC)
    assert c.shape_index == a.shape_index == 1 and np.array_equal(c.coeffs, a.coeffs)
    assert not np.array_equal(c.pose_angles, a.pose_angles)
    assert 1.4 < a.stature_m < 2.1
    assert abs(np.degrees(a.yaw[0])) <= 5 and 85 <= abs(np.degrees(a.yaw[1])) <= 95
    assert a.side_mirrored == (a.yaw[1] < 0)


def test_same_bytes_with_one_or_two_workers(model_path, reference, tmp_path):
    _write(model_path, tmp_path / "w2", workers=2)
    assert _files(tmp_path / "w2") == _files(reference)


def test_resume_after_lost_shard_and_stray_temp(model_path, reference, tmp_path):
    out = tmp_path / "d"
    _write(model_path, out)
    (out / "shard-00001.npz").unlink()
    (out / ".shard-00002.abc123.tmp.npz").write_bytes(b"half a shard")
    (out / "manifest.json").unlink()
    summary = _write(model_path, out)
    assert summary["written"] == 1 and summary["skipped"] == 2
    assert _files(out) == _files(reference)
    # A shard corrupted on disk is regenerated too, not trusted.
    (out / "shard-00000.npz").write_bytes(b"garbage")
    assert _write(model_path, out)["written"] == 1
    assert _files(out) == _files(reference)


def test_killed_run_resumes_without_lost_or_duplicated_samples(model_path, reference,
                                                               tmp_path, monkeypatch):
    import bodyshape.synth.shards as shards

    def dies_at_3(body, index, seed, spec):
        if index == 3:
            raise KeyboardInterrupt  # stands in for a kill in the middle of shard 1
        return make_sample(body, index, seed, spec)

    out = tmp_path / "killed"
    monkeypatch.setattr(shards, "make_sample", dies_at_3)
    with pytest.raises(KeyboardInterrupt):
        _write(model_path, out)
    assert sorted(p.name for p in out.glob("shard-*")) == ["shard-00000.npz"]
    assert not (out / "manifest.json").exists() and not list(out.glob(".*tmp*"))
    monkeypatch.setattr(shards, "make_sample", make_sample)
    assert _write(model_path, out)["skipped"] == 1
    assert _files(out) == _files(reference)


def test_parts_union_equals_single_run(model_path, reference, tmp_path):
    out = tmp_path / "parts"
    first = _write(model_path, out, shard_index=0, num_shards=2)
    assert first["shards"] == 2 and first["manifest"] is None  # shard 1 still missing
    assert not (out / "manifest.json").exists()
    second = _write(model_path, out, shard_index=1, num_shards=2)
    assert second["manifest"] is not None
    assert _files(out) == _files(reference)
    assert finalize(out) == out / "manifest.json"


def test_read_shard_and_corruption_names_the_file(model_path, reference, tmp_path):
    data = read_shard(reference / "shard-00001.npz")
    assert list(data.index) == [2, 3] and data.masks.shape == (2, 2, 64, 64)
    assert set(np.unique(data.masks)) <= {0, 255}
    s = make_sample(BodyModel.load(model_path), 3, 5, SPEC)
    assert np.array_equal(data.masks[1, 1] > 0, s.side >= 0.5)
    assert np.array_equal(data.coeffs[1], s.coeffs)
    assert data.camera(1, "side").to_dict() == s.side_camera
    # Truncated copy in a dataset folder: a clear error with the file name.
    out = tmp_path / "bad"
    _write(model_path, out)
    shard = out / "shard-00001.npz"
    shard.write_bytes(shard.read_bytes()[:-100])
    with pytest.raises(ShardError, match="shard-00001.npz"):
        read_shard(shard)
    with pytest.raises(ShardError, match="shard-00001.npz"):
        read_shard(shard, verify=False)  # still caught by the zip reader


def test_refuses_to_clobber_another_dataset(model_path, reference, tmp_path):
    out = tmp_path / "d"
    _write(model_path, out)
    with pytest.raises(ValueError, match="different dataset.*seed"):
        write_dataset(model_path, out, N, 6, SPEC, shard_size=SHARD, progress=False)
    other = SynthSpec(camera=SPEC.camera, calibration=CalibrationSpec(64, 64))
    with pytest.raises(ValueError, match="spec"):
        write_dataset(model_path, out, N, 5, other, shard_size=SHARD, progress=False)


def test_bad_inputs(model_path, tmp_path):
    with pytest.raises(ValueError, match="not found"):
        write_dataset(tmp_path / "nope.npz", tmp_path / "d", 4, 0, SPEC, progress=False)
    with pytest.raises(ValueError, match="n must be"):
        write_dataset(model_path, tmp_path / "d", 0, 0, SPEC, progress=False)
    with pytest.raises(ValueError, match="shard_index"):
        write_dataset(model_path, tmp_path / "d", 4, 0, SPEC, shard_index=2, num_shards=2,
                      progress=False)
    with pytest.raises(ValueError, match="both"):
        write_dataset(model_path, tmp_path / "d", 4, 0, SPEC, shard_index=0, progress=False)
    with pytest.raises(ValueError, match="poses_per_shape"):
        SynthSpec(poses_per_shape=0)
    (tmp_path / "junk.npz").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="cannot load"):
        write_dataset(tmp_path / "junk.npz", tmp_path / "d", 4, 0, SPEC, progress=False)
    with pytest.raises(FileNotFoundError, match="manifest"):
        ShardDataset(tmp_path)


def test_spec_round_trips_through_json():
    spec = SynthSpec(camera=CameraSpec(long_side=300, aspects=((1, 2),)), poses_per_shape=3)
    assert SynthSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


def test_dataloader_two_workers_yields_every_sample_once(model_path, reference):
    ds = ShardDataset(reference, shuffle=True, seed=3, augment=Augment())
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=2)
    batches = list(loader)
    index = torch.cat([b["index"] for b in batches]).tolist()
    assert sorted(index) == list(range(N)) and len(ds) == N
    b = batches[0]
    assert b["front"].shape == (2, 1, 64, 64) and b["front"].dtype == torch.float32
    assert b["coeffs"].shape == (2, 4) and b["camera_K"].shape == (2, 2, 3, 3)
    assert (b["sex"] == -1).all() and (b["stature"] > 1.4).all()
    test_set, config = held_out_split(reference, ShapeModel.load(model_path))
    assert config["seed"] == 5 and [int(x["index"]) for x in test_set] == list(range(N))


def test_augmentation_changes_masks_but_keeps_them_close(reference):
    masks = read_shard(reference / "shard-00000.npz").masks.reshape(-1, 64, 64) / 255.0
    aug = Augment()
    changed, ious = 0, []
    for i, m in enumerate(np.concatenate([masks] * 4)):
        a = augment_mask(m.astype(np.float32), np.random.default_rng(i), aug)
        assert np.array_equal(a, augment_mask(m.astype(np.float32),
                                              np.random.default_rng(i), aug))
        assert a.shape == m.shape and a.min() >= 0 and a.max() <= 1
        assert np.mean((a > 0.05) & (a < 0.95)) < 0.05  # binary-ish
        x, y = a >= 0.5, m >= 0.5
        ious.append((x & y).sum() / (x | y).sum())
        changed += not np.array_equal(x, y)
    assert changed >= 8
    # Mostly overlapping: on average (a draw hitting every operation at once on a 64-px body
    # with thin arms can dip a little lower).
    assert np.mean(ious) > 0.8 and min(ious) > 0.65, ious


def _naked_views(model, data, r):
    """The naked body of shard row ``r`` posed, turned and framed like each stored view."""
    rest = model.shape.decode(data.coeffs[r][None])[0].astype(np.float64)
    for v, view in enumerate(("front", "side")):
        posed = model.pose(rest, data.pose_angles[r, v].astype(np.float64))
        yield v, view, model.turn(posed, float(data.yaw[r, v])), data.camera(r, view)


@pytest.mark.parametrize("garments", [False, True])
def test_canvas_camera_reprojects_the_stored_mask(model_path, reference, tmp_path, garments):
    """From a shard row alone (coefficients, per-view poses, yaws, cameras, calibration) the
    naked body lands where calibration put the stored mask: the ground truth the
    re-projection loss trains against. Naked, the stored mask is rebuilt exactly; dressed,
    it contains the naked body and is larger."""
    from bodyshape.calibrate import calibrate
    from bodyshape.render.raster import silhouette

    model = BodyModel.load(model_path)
    if garments:
        root = reference
    else:
        root = tmp_path / "naked"
        write_dataset(model_path, root, 2, 5, dataclasses.replace(SPEC, garments=None),
                      shard_size=2, progress=False)
    data = read_shard(root / "shard-00000.npz")
    assert data.canvas_intrinsics().shape == (len(data), 2, 3, 3)
    assert data.pose_angles.shape == (len(data), 2, len(POSE_NAMES))
    assert not np.array_equal(data.pose_angles[:, 0], data.pose_angles[:, 1])
    assert (data.garments >= 0).all() if garments else (data.garments == -1).all()
    for r in range(len(data)):
        for v, view, body, frame in _naked_views(model, data, r):
            cal = calibrate(silhouette(body, model.faces, frame), SPEC.calibration,
                            mirror=bool(data.side_mirrored[r]) and view == "side")
            naked, stored = cal.image >= 0.5, data.masks[r, v] >= 128
            if garments:  # the naked body seen straight on the canvas lies inside the mask
                naked = silhouette(body, model.faces, data.canvas_camera(r, view))
                assert (naked & stored).sum() >= 0.97 * naked.sum()
                assert stored.sum() > naked.sum()
            else:
                np.testing.assert_array_equal(naked, stored)
                assert cal.scale == pytest.approx(data.calib_scale[r, v], rel=1e-9)
            on_frame, _ = frame.project(body)
            on_canvas, _ = data.canvas_camera(r, view).project(body)
            flip = -1.0 if (view == "side" and data.side_mirrored[r]) else 1.0
            np.testing.assert_allclose(on_canvas, data.calib_offset[r, v] + data.calib_scale[
                r, v] * on_frame * [flip, 1.0], atol=1e-6)


def test_bad_output_folders_and_sizes(model_path, reference, tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(ValueError, match="cannot write"):
        write_dataset(model_path, blocker / "sub", 4, 0, SPEC, progress=False)
    with pytest.raises(ValueError, match="not a folder"):
        write_dataset(model_path, blocker, 4, 0, SPEC, progress=False)
    with pytest.raises(ValueError, match="more than"):
        write_dataset(model_path, tmp_path / "d", 10**10, 0, SPEC, progress=False)
    import shutil as _shutil
    from collections import namedtuple
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(_shutil, "disk_usage", lambda p: usage(10**6, 10**6 - 100, 100))
    with pytest.raises(ValueError, match="GB free"):
        write_dataset(model_path, tmp_path / "d2", 1000, 0, SPEC, progress=False)
    assert not (tmp_path / "d2" / "config.json").exists()


def test_cli_synth_writes_and_refuses_clearly(model_path, reference, tmp_path):
    from click.testing import CliRunner

    from bodyshape.cli import main

    out = tmp_path / "data"
    args = ["synth", "--shape-model", str(model_path), "--n", str(N), "--seed", "5",
            "--poses-per-shape", "2", "--shard-size", str(SHARD), "--canvas", "64",
            "--frame", "256", "--out", str(out), "--no-progress"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    assert "dataset complete" in res.output
    assert _files(out) == _files(reference)  # the CLI makes the same bytes as the API
    before = _files(out)
    res = CliRunner().invoke(main, args[:-3] + ["--seed", "6", "--out", str(out)])
    assert res.exit_code == 2 and "different dataset" in res.output
    assert _files(out) == before
    res = CliRunner().invoke(main, args + ["--shard-index", "1"])
    assert res.exit_code == 2 and "both" in res.output
    res = CliRunner().invoke(main, ["synth", "--shape-model", str(tmp_path / "none.npz"),
                                    "--n", "3", "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "not found" in res.output


def test_same_samples_as_before_the_torch_kinematics(body):
    """Synthesis through the one torch kinematics gives the samples that the earlier numpy
    posing gave (``tests/data/synth_reference_seed11.npz``: 24 samples of the shipped shape
    model, seed 11, the spec of the time: ``SynthSpec.clean()``, written by the numpy code): masks, poses, yaws,
    coefficients and calibration bit for bit; the stored cameras within float64 rounding:
    they are framed on the posed vertices, which differ in the last bits, by a root solve
    (measured: 4e-13 in R, 2e-12 m in t)."""
    from pathlib import Path

    ref = np.load(Path(__file__).parent / "data" / "synth_reference_seed11.npz")
    got = shard_arrays([make_sample(body, i, 11, SynthSpec.clean()) for i in range(24)])
    # Since per-view poses, shards hold a pose per view (equal rows for the clean preset's
    # shared pose), the outfit codes (-1: naked) and keypoints.
    assert (got.pop("garments") == -1).all()
    assert np.isfinite(got.pop("keypoints")).all()  # new: body keypoints (separate stream)
    angles = got.pop("pose_angles")
    assert np.array_equal(angles[:, 0], angles[:, 1])
    got["pose_angles"] = angles[:, 0]
    assert set(got) == set(ref.files)
    rounding = {"camera_R": 1e-9, "camera_t": 1e-9}  # unitless / meters
    for key in ref.files:
        if key in rounding:
            np.testing.assert_allclose(got[key], ref[key], rtol=0, atol=rounding[key])
        else:
            assert np.array_equal(got[key], ref[key]), key


def test_measured_augmentation_and_boundary_offset(reference):
    """``Augment.measured()`` loads the shipped fit; a pure offset moves the boundary by the
    asked amount (area change over perimeter) and leaves the generic stream untouched."""
    import cv2

    from bodyshape.dataset.stream import MEASURED_NAME

    aug = Augment.measured()
    assert aug.p_bulge == 0 and aug.p_morph == 0 and aug.p_jitter == 1.0
    assert 0 < aug.jitter_px < 1 and abs(aug.offset_px[0]) < 0.5
    fine = np.zeros((1024, 1024), np.float32)  # an anti-aliased disc: soft in, soft out
    cv2.circle(fine, (512, 512), 240, 1.0, -1)
    disc = cv2.resize(fine, (128, 128), interpolation=cv2.INTER_AREA)
    for px in (-2.0, 1.5, 3.0):
        grown = augment_mask(disc, np.random.default_rng(0), Augment(
            p_jitter=0, p_morph=0, p_holes=0, p_blobs=0, p_bulge=0, offset_px=(px, 0.0)))
        radius = np.sqrt(grown.sum() / np.pi)  # a disc of radius 30 grown by px
        assert radius == pytest.approx(30 + px, abs=0.12)
    m = read_shard(reference / "shard-00000.npz").masks[0, 0].astype(np.float32) / 255
    a = augment_mask(m, np.random.default_rng(5), Augment())
    b = augment_mask(m, np.random.default_rng(5), dataclasses.replace(Augment(),
                                                                     offset_px=(0.0, 0.0)))
    assert np.array_equal(a, b)
    from unittest import mock

    from bodyshape.dataset import stream
    with mock.patch.object(stream, "MEASURED_NAME", "no-such-" + MEASURED_NAME), \
            pytest.raises(FileNotFoundError, match="bench_segmentation"):
        Augment.measured()


def test_eval_with_measured_errors_is_fixed(model_path, reference, tmp_path):
    """The realistic test set's corruption is a fixed function of the sample index."""
    from bodyshape.dataset.stream import ShardDataset

    a = [x["front"] for x in ShardDataset(reference, augment=Augment.measured())]
    b = [x["front"] for x in ShardDataset(reference, augment=Augment.measured())]
    clean = [x["front"] for x in ShardDataset(reference)]
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert any(not torch.equal(x, y) for x, y in zip(a, clean))


def test_format_2_shards_still_read(reference, tmp_path):
    """A shard written before per-view poses (one pose row per sample, no garments or
    keypoints) reads as the current format: the pose repeated per view, garments -1,
    keypoints NaN."""
    import shutil

    from bodyshape.dataset.shard_format import write_npz

    src = reference / "shard-00000.npz"
    with np.load(src) as z:
        arrays = {k: z[k] for k in z.files if k not in ("garments", "keypoints")}
    arrays["pose_angles"] = arrays["pose_angles"][:, 0]
    old = tmp_path / "old"
    old.mkdir()
    shutil.copy(reference / "config.json", old / "config.json")
    write_npz(old / "shard-00000.npz", arrays)
    data = read_shard(old / "shard-00000.npz", verify=False)
    assert data.pose_angles.shape == (len(data), 2, len(POSE_NAMES))
    assert np.array_equal(data.pose_angles[:, 0], data.pose_angles[:, 1])
    assert (data.garments == -1).all() and np.isnan(data.keypoints).all()
