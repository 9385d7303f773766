"""Network v2 (issue 13): part channels, weight input, pose heads, the differentiable
girths, devices, and their path from training through evaluation to prediction."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import SMALL

from bodyshape.body.anthropometry import BODY_DENSITY_KG_M3, body_weight_kg, mesh_volume
from bodyshape.checkpoint import ModelSpec, load_checkpoint
from bodyshape.cli import main
from bodyshape.device import resolve_device
from bodyshape.evaluate import evaluate
from bodyshape.inputs import InputError, check_weight
from bodyshape.measure import measure_bodies
from bodyshape.nets import FusionModel, InputConfig, TwoChannelModel, ViewModel, aux_features
from bodyshape.nets.girths import GIRTH_NAMES, SurrogateGirths
from bodyshape.parts import PART_GROUPS, part_channels
from bodyshape.train import StageData, TrainConfig, train_stage

V2 = dict(parts=True, weight_input=True, pose_weight=0.1, girth_weight=0.05, girth_start=0.0)


def test_part_channels_split_the_mask_by_group():
    mask = torch.rand(2, 1, 6, 5)
    labels = torch.randint(0, 11, (2, 6, 5), dtype=torch.uint8)
    x = part_channels(mask, labels)
    assert x.shape == (2, 1 + len(PART_GROUPS), 6, 5)
    torch.testing.assert_close(x[:, 0], mask[:, 0])
    # Every foreground label lands in exactly one group; left and right share one.
    torch.testing.assert_close(x[:, 1:].sum(1), mask[:, 0] * (labels > 0))
    both = torch.tensor([[[3, 4]]], dtype=torch.uint8)  # upper arm left, right
    assert part_channels(torch.ones(1, 1, 1, 2), both)[0, 1 + PART_GROUPS.index("upper_arm")] \
        .sum() == 2
    assert not part_channels(mask, None)[:, 1:].any()
    with pytest.raises(ValueError, match="labels must be"):
        part_channels(mask, labels[:, :3])


def test_aux_features_with_weight_known_and_unknown():
    h, s = torch.tensor([1.7, 1.7]), torch.tensor([0, -1])
    aux = aux_features(h, s, torch.tensor([85.0, float("nan")]), with_weight=True)
    assert aux.shape == (2, 6)
    assert aux[0, 4] == pytest.approx(1.0) and aux[0, 5] == 1  # (85 - 70) / 15, known
    assert aux[1, 4] == 0 and aux[1, 5] == 0  # unknown: zero value, flag off
    torch.testing.assert_close(aux[:, :4], aux_features(h, s))
    assert aux_features(h, s, None, with_weight=True)[:, 5].sum() == 0


@pytest.mark.parametrize("net_cls", [ViewModel, TwoChannelModel])
def test_pose_heads_and_part_inputs_shapes(net_cls):
    inputs = InputConfig(parts=True, weight=True)
    net = net_cls(5, inputs=inputs, pose_dim=16)
    x = torch.rand(3, inputs.channels, 64, 64)
    h, s, w = torch.full((3,), 1.7), torch.zeros(3, dtype=torch.long), torch.full((3,), 70.0)
    out = net(x, h, s, w) if net_cls is ViewModel else net(x, x, h, s, w)
    assert out.z.shape == (3, 5)
    assert out.pose.shape == ((3, 16) if net_cls is ViewModel else (3, 2, 16))
    with pytest.raises(ValueError, match=r"\(B, 7, H, W\)"):
        net(torch.rand(3, 1, 64, 64), h, s) if net_cls is ViewModel else \
            net(torch.rand(3, 1, 64, 64), torch.rand(3, 1, 64, 64), h, s)


def test_fusion_refuses_mismatched_branches():
    with pytest.raises(ValueError, match="different inputs"):
        FusionModel(ViewModel(4, inputs=InputConfig(parts=True)), ViewModel(4))


def test_legacy_spec_reads_as_silhouette_only():
    d = ModelSpec("view", 4, view="front").to_dict()
    d.pop("inputs"), d.pop("pose_dim")
    spec = ModelSpec.from_dict(d)
    assert spec.inputs == InputConfig() and spec.pose_dim == 0


def test_mesh_volume_and_weight_of_a_box():
    import trimesh

    box = trimesh.creation.box((0.2, 0.3, 0.5))
    v = torch.tensor(np.asarray(box.vertices))
    f = torch.tensor(np.asarray(box.faces))
    assert float(mesh_volume(v, f)) == pytest.approx(0.03)
    assert float(body_weight_kg(v[None].expand(2, -1, -1), f)[1]) == pytest.approx(
        0.03 * BODY_DENSITY_KG_M3)


@pytest.fixture(scope="module")
def girths(body):
    return SurrogateGirths(body.shape.mean, body.template)


def test_surrogate_girths_follow_measure_py(body, girths):
    v = body.shape.sample(6, np.random.default_rng(5)).vertices.astype(np.float64)
    got = girths(torch.from_numpy(v)).numpy() * 100
    ref = measure_bodies(v, body.template)
    for k, name in enumerate(GIRTH_NAMES):
        err = np.abs(got[:, k] - getattr(ref, f"{name}_cm"))
        assert err.mean() < 0.6 and err.max() < 2.5, (name, err)  # cm


def test_surrogate_girths_scale_with_the_body_and_ignore_translation(body, girths):
    v = torch.from_numpy(body.shape.sample(2, np.random.default_rng(1)).vertices).double()
    g = girths(v)
    torch.testing.assert_close(girths(1.1 * v), 1.1 * g)
    torch.testing.assert_close(girths(v + torch.tensor([0.3, -0.2, 0.5]).double()), g)


def test_surrogate_girths_have_gradients(body, girths):
    v = torch.from_numpy(body.shape.sample(1, np.random.default_rng(2)).vertices).double()
    used = girths.used
    sub = v[:, used].clone().requires_grad_()

    def f(s):
        full = v.clone()
        full[:, used] = s
        return girths(full)

    assert torch.autograd.gradcheck(f, (sub,), eps=1e-7, atol=1e-5)


def test_devices_resolve_or_fail_in_one_line():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            resolve_device("cuda")
    with pytest.raises(ValueError, match="one of"):
        resolve_device("tpu")


def test_weight_is_checked():
    assert check_weight("72.5") == 72.5
    for bad in ("heavy", 5, 900, float("nan")):
        with pytest.raises(InputError, match="weight"):
            check_weight(bad)


@pytest.fixture(scope="module")
def v2_branches(data, tmp_path_factory):
    root, small_body = data
    out = tmp_path_factory.mktemp("v2runs")
    paths = {}
    for stage in ("front", "side"):
        paths[stage] = train_stage(TrainConfig(stage=stage, epochs=1, **SMALL, **V2),
                                   StageData(root / "train", root / "val", small_body),
                                   out / stage, progress=False, device="cpu")
    paths["fusion"] = train_stage(TrainConfig(stage="fusion", epochs=1, **SMALL, **V2),
                                  StageData(root / "train", None, small_body, paths["front"],
                                            paths["side"]), out / "fusion", progress=False)
    return paths


def test_v2_training_records_every_loss_term(v2_branches):
    ck = load_checkpoint(v2_branches["front"])
    assert ck.spec.inputs == InputConfig(parts=True, weight=True) and ck.spec.pose_dim == 16
    row = ck.train["history"][-1]
    for key in ("pose", "girth", "girth_mm", "val_girth_mm", "val_pose", "w_girth"):
        assert np.isfinite(row[key]), key


def test_v2_fusion_needs_v2_branches(data, v2_branches, branches, tmp_path):
    root, model = data
    with pytest.raises(ValueError, match="other inputs"):
        train_stage(TrainConfig(stage="fusion", epochs=1, **SMALL, **V2),
                    StageData(root / "train", None, model, branches["front"], branches["side"]),
                    tmp_path / "f", progress=False)


def test_v2_evaluates_with_and_without_weight(data, v2_branches):
    root, model = data
    ck = load_checkpoint(v2_branches["fusion"])
    a = evaluate(ck, root / "val", model)
    b = evaluate(ck, root / "val", model, weight_known=True)
    assert b["weight_known"] and np.isfinite(b["all"]["chest_mm"])
    assert a["all"]["vertex_mm"] != b["all"]["vertex_mm"]  # the weight reaches the network


def test_v2_predicts_poses_and_takes_the_weight(data, v2_branches):
    from bodyshape.dataset.shard_format import read_shard
    from bodyshape.predict import Predictor

    root, model = data
    pred = Predictor(load_checkpoint(v2_branches["fusion"]), model, device="cpu")
    masks = read_shard(root / "val" / "shard-00000.npz").masks[0]
    rgb = [np.repeat(np.kron(m, np.ones((4, 4), np.uint8))[..., None], 3, axis=2)
           for m in masks]
    p = pred(rgb[0], rgb[1], 170, masks=True, weight_kg=70)
    assert p.pose_source == "network" and p.pose_angles.shape == (2, 16)
    assert p.weight_kg == 70
    q = pred(rgb[0], rgb[1], 170, masks=True)
    assert not np.array_equal(p.coeffs, q.coeffs)


def test_cli_train_v2_options_and_device_errors(data, tmp_path, small_model_path):
    root, _ = data
    args = ["train", "--stage", "front", "--data", str(root / "train"), "--out",
            str(tmp_path / "o"), "--shape-model", str(small_model_path), "--max-steps", "1",
            "--parts", "--weight-input", "--pose-weight", "0.1", "--girth-weight", "0.1",
            "--no-progress"]
    if not torch.cuda.is_available():
        res = CliRunner().invoke(main, args + ["--device", "cuda"])
        assert res.exit_code == 2 and "no CUDA GPU" in res.output
    res = CliRunner().invoke(main, ["train", "--help"])
    for opt in ("--parts", "--weight-input", "--pose-weight", "--girth-weight", "--device"):
        assert opt in res.output


def test_cli_predict_weight_and_batch_column(data, v2_branches, tmp_path, small_model_path):
    import cv2

    from bodyshape.dataset.shard_format import read_shard

    root, _ = data
    res = CliRunner().invoke(main, ["predict", "--front", str(small_model_path), "--side",
                                    str(small_model_path), "--height-cm", "170",
                                    "--weight-kg", "5"])
    assert res.exit_code == 2 and "weight 5 kg is outside" in res.output
    masks = read_shard(root / "val" / "shard-00000.npz").masks[0]
    for name, m in (("f.png", masks[0]), ("s.png", masks[1])):
        cv2.imwrite(str(tmp_path / name), cv2.resize(m, (256, 256),
                                                       interpolation=cv2.INTER_NEAREST))
    (tmp_path / "pairs.csv").write_text("id,front,side,height_cm,sex,weight_kg\n"
                                        "a,f.png,s.png,170,,70\nb,f.png,s.png,170,,oops\n")
    res = CliRunner().invoke(main, ["predict", "--batch", str(tmp_path / "pairs.csv"),
                                    "--out", str(tmp_path / "out"), "--model",
                                    str(v2_branches["fusion"]), "--shape-model",
                                    str(small_model_path), "--device", "cpu"])
    assert res.exit_code == 1, res.output  # one pair failed
    assert "a: ok" in res.output and "weight must be a number" in res.output
    shape = json.loads((tmp_path / "out" / "a" / "shape.json").read_text())
    assert shape["pose_source"] == "network" and set(shape["pose_deg"]) == {"front", "side"}
    assert json.loads((tmp_path / "out" / "a" / "measurements.json").read_text())[
        "weight_kg"] == 70


def test_part_labels_refuse_data_without_keypoints(data, tmp_path):
    """Shards from before keypoints were stored would train a part-aware network on empty
    part channels; the dataset says so instead."""
    import shutil

    from bodyshape.dataset.shard_format import ShardError, read_shard
    from bodyshape.dataset.stream import ShardDataset

    root, _ = data
    old = tmp_path / "old"
    shutil.copytree(root / "val", old)
    shard = old / "shard-00000.npz"
    arrays = dict(np.load(shard))
    arrays["keypoints"] = np.full_like(arrays["keypoints"], np.nan)
    np.savez(shard, **arrays)
    read_shard(shard, verify=False)  # still a readable shard
    with pytest.raises(ShardError, match="no body keypoints"):
        ShardDataset(old, parts=True, verify=False)
    ShardDataset(old, verify=False)  # fine without part labels
