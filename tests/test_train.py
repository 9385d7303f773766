"""Training stages, checkpoints, resume, evaluation and their errors, on tiny fixtures.

A 4-component template model, 24 samples on a 64 px canvas (256 px frames): every code path
of the real runs, in seconds.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import SMALL  # shared tiny-network config

from bodyshape.body import BodyModel
from bodyshape.checkpoint import CheckpointError, load_checkpoint
from bodyshape.cli import main
from bodyshape.evaluate import evaluate, markdown
from bodyshape.shape.pca import ShapeModel
from bodyshape.train import StageData, TrainConfig, train_stage


def test_checkpoint_is_self_describing(data, branches):
    root, body = data
    ck = load_checkpoint(branches["front"])
    assert ck.spec.kind == "view" and ck.spec.view == "front"
    assert ck.shape_model_hash == body.shape.model_hash
    assert ck.calibration["canvas_height"] == 64
    assert ck.train["epoch"] == 1 and ck.z_mean.shape == (4,)
    assert (branches["front"].parent / "history.csv").is_file()
    assert (branches["front"].parent / "loss.png").is_file()
    # The rebuilt network gives the same outputs as a second load.
    x = torch.rand(2, 1, 64, 64)
    h, s = torch.tensor([1.7, 1.6]), torch.tensor([0, -1])
    a = ck.model(x, h, s).z
    b = load_checkpoint(branches["front"]).model(x, h, s).z
    assert torch.equal(a, b)


def _poison_after(monkeypatch, calls: int, error):
    """Make ``_Runner.losses`` fail (raise, or return NaN) after ``calls`` good calls."""
    import bodyshape.train as tr

    real, count = tr._Runner.losses, [0]

    def losses(self, *a, **k):
        count[0] += 1
        out = real(self, *a, **k)
        if count[0] > calls:
            if error == "nan":
                out["total"] = out["total"] * float("nan")
            else:
                raise KeyboardInterrupt  # as a kill would stop it
        return out

    monkeypatch.setattr(tr._Runner, "losses", losses)


def test_resume_after_a_kill_matches_an_uninterrupted_run(data, tmp_path, monkeypatch):
    root, model = data
    d = StageData(root / "train", None, model)  # no validation: 3 losses calls per epoch
    cfg = TrainConfig(stage="side", epochs=2, **SMALL)
    full = load_checkpoint(train_stage(cfg, d, tmp_path / "full", progress=False))
    with monkeypatch.context() as m:
        _poison_after(m, 4, "kill")  # dies inside epoch 2
        with pytest.raises(KeyboardInterrupt):
            train_stage(cfg, d, tmp_path / "killed", progress=False)
    assert load_checkpoint(tmp_path / "killed" / "checkpoint.pt").train["epoch"] == 1
    resumed = load_checkpoint(train_stage(cfg, d, tmp_path / "killed", progress=False))
    assert resumed.train["epoch"] == 2 and len(resumed.train["history"]) == 2
    a, b = full.model.state_dict(), resumed.model.state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="another config"):
        train_stage(TrainConfig(stage="side", epochs=3, lr=0.5, **SMALL), d,
                    tmp_path / "killed", progress=False)


def test_run_saved_before_the_v2_fields_resumes_with_them_off(data, tmp_path):
    """An older run's checkpoint has no parts/weight/pose/girth fields: it trained with them
    off, whatever today's defaults, so it resumes with them off and not with the defaults."""
    from bodyshape.train import ADDED_OFF

    root, model = data
    d = StageData(root / "train", None, model)
    old = dict(SMALL, **ADDED_OFF)
    path = train_stage(TrainConfig(stage="front", epochs=1, **old), d, tmp_path / "run",
                       progress=False)  # a finished run: rerunning it only checks the config
    raw = torch.load(path, map_location="cpu", weights_only=True)
    for k in ADDED_OFF:
        del raw["train"]["config"][k]
    torch.save(raw, path)
    if TrainConfig(stage="front").girth_weight > 0:  # today's default differs: refused
        with pytest.raises(ValueError, match="another config"):
            train_stage(TrainConfig(stage="front", epochs=1, **SMALL), d, tmp_path / "run",
                        progress=False)
    again = load_checkpoint(train_stage(TrainConfig(stage="front", epochs=1, **old), d,
                                        tmp_path / "run", progress=False))
    assert again.train["epoch"] == 1


def test_fusion_needs_the_right_branches(data, branches, tmp_path):
    root, model = data
    for mode in ("frozen", "lower"):
        path = train_stage(TrainConfig(stage="fusion", epochs=1, branch_mode=mode, **SMALL),
                           StageData(root / "train", None, model, branches["front"],
                                     branches["side"]), tmp_path / mode, progress=False)
        fused = load_checkpoint(path)
        assert fused.spec.kind == "fusion"
    # frozen branches keep the front branch's weights
    ref = load_checkpoint(branches["front"]).model.state_dict()
    got = load_checkpoint(tmp_path / "frozen" / "checkpoint.pt").model.front.state_dict()
    assert all(torch.equal(ref[k], got[k]) for k in ref)
    with pytest.raises(ValueError, match="not a side view"):
        train_stage(TrainConfig(stage="fusion", epochs=1, **SMALL),
                    StageData(root / "train", None, model, branches["front"],
                              branches["front"]), tmp_path / "bad", progress=False)
    with pytest.raises(ValueError, match="needs the front and side"):
        train_stage(TrainConfig(stage="fusion", epochs=1, **SMALL),
                    StageData(root / "train", None, model), tmp_path / "bad2", progress=False)


def test_other_shape_model_is_refused(data, branches, tmp_path):
    root, body = data
    model = body.shape
    other = BodyModel.load(ShapeModel.fit(
        model.decode(np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32)
                     * model.std), model.faces, model.template_hash, n_components=3))
    with pytest.raises(ValueError, match="another shape model"):
        train_stage(TrainConfig(stage="front", epochs=1, **SMALL),
                    StageData(root / "train", None, other), tmp_path / "x", progress=False)
    with pytest.raises(ValueError, match="another shape model"):
        evaluate(load_checkpoint(branches["front"]), root / "val", other)


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(data, tmp_path, monkeypatch):
    root, model = data
    d = StageData(root / "train", None, model)
    _poison_after(monkeypatch, 6, "nan")  # epochs 1 and 2 are good
    with pytest.raises(FloatingPointError, match="last good checkpoint"):
        train_stage(TrainConfig(stage="front", epochs=3, **SMALL), d, tmp_path / "n",
                    progress=False)
    assert load_checkpoint(tmp_path / "n" / "checkpoint.pt").train["epoch"] == 2


def test_corrupt_checkpoint_is_named(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="bad.pt"):
        load_checkpoint(bad)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "none.pt")
    torch.save({"format": "other"}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a bodyshape checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


def test_evaluate_reports_every_metric_and_group(data, branches):
    root, model = data
    report = evaluate(load_checkpoint(branches["side"]), root / "val", model)
    assert report["all"]["n"] == 8
    for m in ("vertex_mm", "stature_mm", "chest_mm", "waist_mm", "hip_mm", "iou_front",
              "iou_side"):
        assert np.isfinite(report["all"][m])
    assert 0.3 < report["all"]["iou_front"] <= 1 and report["by_bmi"]
    assert "| all | 8 |" in markdown(report)


def test_cli_train_and_eval_errors(data, branches, tmp_path, small_model_path):
    root, _ = data
    run = CliRunner().invoke
    res = run(main, ["train", "--stage", "front", "--data", str(tmp_path / "none"),
                     "--out", str(tmp_path / "o"), "--shape-model", str(small_model_path)])
    assert res.exit_code == 2 and "not a finished dataset" in res.output
    res = run(main, ["train", "--stage", "fusion", "--data", str(root / "train"),
                     "--out", str(tmp_path / "o"), "--shape-model", str(small_model_path)])
    assert res.exit_code == 2 and "--front and --side" in res.output
    res = run(main, ["eval", "--model", str(branches["front"]), "--data", str(root / "val"),
                     "--shape-model", str(small_model_path), "--out",
                     str(tmp_path / "r.json")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "r.json").is_file() and (tmp_path / "r.md").is_file()
    res = run(main, ["eval", "--model", str(tmp_path / "none.pt"), "--data",
                     str(root / "val"), "--shape-model", str(small_model_path)])
    assert res.exit_code == 2 and "not found" in res.output


def test_viz_features_writes_grids_per_view_and_layer(branches, data, tmp_path):
    import cv2

    root, model = data
    # Full-frame masks: a stored canvas upscaled stands in for a segmented photo.
    from bodyshape.dataset.shard_format import read_shard
    masks = read_shard(root / "val" / "shard-00000.npz").masks[0]
    for name, m in (("f.png", masks[0]), ("s.png", masks[1])):
        cv2.imwrite(str(tmp_path / name), cv2.resize(m, (256, 256),
                                                       interpolation=cv2.INTER_NEAREST))
    fused = branches["fusion"]
    res = CliRunner().invoke(main, ["viz", "features", "--model", str(fused), "--front",
                                    str(tmp_path / "f.png"), "--side", str(tmp_path / "s.png"),
                                    "--out", str(tmp_path / "viz")])
    assert res.exit_code == 0, res.output
    names = sorted(p.name for p in (tmp_path / "viz").iterdir())
    assert "front_stem.png" in names and "side_stage4.png" in names and len(names) == 10
    res = CliRunner().invoke(main, ["viz", "features", "--model", str(fused), "--front",
                                    str(tmp_path / "f.png"), "--side", str(tmp_path / "f.png"),
                                    "--out", str(tmp_path / "viz2"), "--side-facing", "up"])
    assert res.exit_code == 2
