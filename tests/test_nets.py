"""Tests for the silhouette networks and losses on small generated fixtures (K=6, V=50, 64 px)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from bodyshape.nets import (
    AUX_DIM,
    MESH_LOSS_SCALE_M,
    EncoderConfig,
    FusionModel,
    HeadConfig,
    MeshDecoder,
    TwoChannelModel,
    ViewModel,
    WeightSchedule,
    aux_features,
    init_last_layer_from_pca,
    iou_loss,
    mesh_loss,
    pca_loss,
    shape_loss,
    soft_iou,
    vertex_error_mm,
)

K = 6
V = 50
SIZE = 64
SMALL = EncoderConfig(widths=(8, 16, 16, 32), feature_dim=32)
SMALL_HEAD = HeadConfig(hidden=(32, 16))


@pytest.fixture(scope="module")
def pca():
    """A random PCA model: mean (V, 3) m, orthonormal components (K, 3V), std (K,) m."""
    rng = np.random.default_rng(0)
    mean = (rng.standard_normal((V, 3)) * [0.15, 0.1, 0.5] + [0, 0, 0.9]).astype(np.float32)
    q, _ = np.linalg.qr(rng.standard_normal((3 * V, K)))
    std = np.geomspace(1.0, 0.05, K).astype(np.float32)
    return SimpleNamespace(mean=mean, components=q.T.astype(np.float32).copy(), std=std)


def _inputs(b: int, gen: torch.Generator, size: tuple[int, int] = (SIZE, SIZE), sex=None):
    h, w = size
    front = (torch.rand(b, 1, h, w, generator=gen) > 0.5).float()
    side = (torch.rand(b, 1, h, w, generator=gen) > 0.5).float()
    height = 1.5 + 0.4 * torch.rand(b, generator=gen)
    if sex is None:
        sex = torch.tensor([-1, 0, 1] * b)[:b]
    return front, side, height, torch.as_tensor(sex, dtype=torch.long).expand(b).clone()


def _models(norm: str = "group"):
    cfg = EncoderConfig(widths=SMALL.widths, feature_dim=SMALL.feature_dim, norm=norm)
    view = ViewModel(K, cfg, SMALL_HEAD)
    two = TwoChannelModel(K, cfg, SMALL_HEAD)
    fusion = FusionModel.from_configs(K, cfg, SMALL_HEAD, HeadConfig((24,)))
    return view, two, fusion


def _run(model, front, side, height, sex):
    if isinstance(model, ViewModel):
        return model(front, height, sex)
    return model(front, side, height, sex)


# ---- aux ----------------------------------------------------------------------------------


def test_aux_features_encodes_height_and_sex():
    aux = aux_features(torch.tensor([1.7, 1.8, 1.5]), torch.tensor([0, 1, -1]))
    assert aux.shape == (3, AUX_DIM)
    expected = [[0, 1, 0, 0], [1, 0, 1, 0], [-2, 0, 0, 1]]
    torch.testing.assert_close(aux, torch.tensor(expected, dtype=torch.float32))
    with pytest.raises(ValueError):
        aux_features(torch.tensor([1.7]), torch.tensor([2]))
    with pytest.raises(ValueError):
        aux_features(torch.tensor([1.7, 1.6]), torch.tensor([0]))


# ---- shapes and batching ----------------------------------------------------------------


@pytest.mark.parametrize("sex", [-1, 1, None], ids=["unknown", "male", "mixed"])
@pytest.mark.parametrize("size", [(SIZE, SIZE), (32, 32), (48, 40)])
def test_output_shapes(sex, size):
    torch.manual_seed(0)
    view, two, fusion = _models()
    front, side, height, sexes = _inputs(3, torch.Generator().manual_seed(1), size, sex)
    out = view(front, height, sexes)
    assert out.z.shape == (3, K) and out.features.shape == (3, SMALL_HEAD.hidden[-1])
    out = two(front, side, height, sexes)
    assert out.z.shape == (3, K) and out.features.shape == (3, SMALL_HEAD.hidden[-1])
    out = fusion(front, side, height, sexes)
    assert out.z.shape == out.front_z.shape == out.side_z.shape == (3, K)
    assert all(torch.isfinite(t).all() for t in (out.z, out.front_z, out.side_z))


def test_default_config_shapes_and_bad_inputs():
    torch.manual_seed(0)
    model = ViewModel(50)
    front, side, height, sex = _inputs(2, torch.Generator().manual_seed(0), (128, 128))
    assert model(front, height, sex).z.shape == (2, 50)
    with pytest.raises(ValueError):
        model(torch.zeros(2, 1, 16, 16), height, sex)
    with pytest.raises(ValueError):
        model(torch.zeros(2, 2, 64, 64), height, sex)
    with pytest.raises(ValueError):
        TwoChannelModel(K, SMALL, SMALL_HEAD)(front, side[..., :64], height, sex)


@pytest.mark.parametrize("norm", ["group", "batch"])
def test_batched_equals_per_sample_in_eval(norm):
    torch.manual_seed(0)
    inputs = _inputs(4, torch.Generator().manual_seed(2))
    for model in _models(norm):
        if norm == "batch":  # give BatchNorm non-trivial running statistics first
            model.train()
            with torch.no_grad():
                _run(model, *inputs)
        model.eval()
        with torch.no_grad():
            batched = _run(model, *inputs).z
            single = torch.cat([_run(model, *(t[i : i + 1] for t in inputs)).z for i in range(4)])
        torch.testing.assert_close(batched, single, atol=1e-5, rtol=1e-5)


# ---- PCA initialization -------------------------------------------------------------------


def test_mesh_decoder_reproduces_pca(pca):
    dec = MeshDecoder.from_arrays(pca.mean, pca.components, pca.std)
    z = torch.randn(5, K, generator=torch.Generator().manual_seed(3))
    expected = pca.mean + ((z.numpy() * pca.std) @ pca.components).reshape(5, V, 3)
    np.testing.assert_allclose(dec(z).numpy(), expected, atol=1e-5)
    torch.testing.assert_close(dec(torch.zeros(1, K))[0], torch.from_numpy(pca.mean))
    assert dec.rms_vertex_std_m == pytest.approx(math.sqrt((pca.std.astype(float) ** 2).sum() / V))

    assert not any(p.requires_grad for p in dec.parameters())
    assert len(list(dec.parameters())) == 2  # still parameters: they move with .to()
    assert dec.to(torch.float64)(z.double()).dtype == torch.float64
    trainable = MeshDecoder.from_shape_model(pca, n_components=4, trainable=True)
    assert all(p.requires_grad for p in trainable.parameters())
    np.testing.assert_allclose(
        trainable(z[:, :4]).detach().numpy(),
        pca.mean + ((z[:, :4].numpy() * pca.std[:4]) @ pca.components[:4]).reshape(5, V, 3),
        atol=1e-5,
    )
    with pytest.raises(ValueError):
        dec(torch.zeros(2, K + 1))


def test_zero_last_layer_predicts_mean_for_any_input():
    torch.manual_seed(0)
    mean_z = torch.linspace(-0.3, 0.2, K)
    gen = torch.Generator().manual_seed(4)
    for model in _models():
        model.init_from_pca(mean_z)
        for _ in range(2):
            z = _run(model, *_inputs(3, gen)).z
            torch.testing.assert_close(z, mean_z.expand(3, K))
    layer = torch.nn.Linear(8, K)
    w = layer.weight.detach().clone()
    init_last_layer_from_pca(layer, mean_z, weight_scale=0.1)
    torch.testing.assert_close(layer.weight, 0.1 * w)
    with pytest.raises(ValueError):
        init_last_layer_from_pca(layer, torch.zeros(K + 1))


# ---- fusion fine-tuning modes -------------------------------------------------------------


def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_param_groups_frozen_keeps_branches(pca):
    torch.manual_seed(0)
    fusion = FusionModel.from_configs(
        K, EncoderConfig(widths=(8, 16), feature_dim=16, norm="batch"), SMALL_HEAD
    )
    groups = fusion.param_groups(1e-2, branch_lr_scale=0.1, freeze_branches=True)
    assert [g["name"] for g in groups] == ["fusion"]
    opt = torch.optim.Adam(groups)
    fusion.train()
    assert fusion.training and not fusion.front.training and not fusion.side.training
    branches, head = _snapshot(fusion.front), _snapshot(fusion.head)
    front, side, height, sex = _inputs(4, torch.Generator().manual_seed(5))
    loss = pca_loss(fusion(front, side, height, sex).z, torch.ones(4, K))
    loss.backward()
    opt.step()
    # Weights and BatchNorm running statistics of the branch are untouched...
    for k, v in fusion.front.state_dict().items():
        torch.testing.assert_close(v, branches[k], rtol=0, atol=0)
    # ...while the fusion head moved.
    assert any(not torch.equal(v, head[k]) for k, v in fusion.head.state_dict().items())

    groups = fusion.param_groups(1e-2, branch_lr_scale=1.0, freeze_branches=False)
    fusion.train()
    assert fusion.front.training and all(p.requires_grad for p in fusion.branch_parameters())
    assert [g["lr"] for g in groups] == [1e-2, 1e-2]


def test_param_groups_lower_lr():
    torch.manual_seed(0)
    fusion = FusionModel.from_configs(K, SMALL, SMALL_HEAD)
    groups = fusion.param_groups(1e-3, branch_lr_scale=0.1)
    by_name = {g["name"]: g for g in groups}
    assert by_name["fusion"]["lr"] == pytest.approx(1e-3)
    assert by_name["branches"]["lr"] == pytest.approx(1e-4)
    n_groups = sum(len(g["params"]) for g in groups)
    assert n_groups == len(list(fusion.parameters()))
    opt = torch.optim.SGD(groups, lr=1.0)  # the group lrs win over the default
    assert [g["lr"] for g in opt.param_groups] == [pytest.approx(1e-3), pytest.approx(1e-4)]


# ---- losses -------------------------------------------------------------------------------


def test_weight_schedule():
    sched = WeightSchedule()
    expected = [(0.9, 0.1), (0.7, 0.3), (0.5, 0.5), (0.2, 0.8)]
    assert [sched.weights(e, 4) for e in range(4)] == expected
    quarters = [sched.weights(e, 10) for e in range(10)]
    assert quarters[:3] == [(0.9, 0.1)] * 3 and quarters[3:5] == [(0.7, 0.3)] * 2
    assert quarters[5:8] == [(0.5, 0.5)] * 3 and quarters[8:] == [(0.2, 0.8)] * 2
    assert sched.weights(12, 10) == (0.2, 0.8)
    assert WeightSchedule.fixed(1, 0).weights(7, 10) == (1.0, 0.0)
    assert WeightSchedule.fixed(0.5, 0.5).weights(0, 10) == (0.5, 0.5)
    with pytest.raises(ValueError):
        WeightSchedule(((0.5, 1, 0), (0.4, 1, 0), (1.0, 1, 0)))
    with pytest.raises(ValueError):
        WeightSchedule(((0.5, 1, 0),))


def test_losses_and_metrics(pca):
    gen = torch.Generator().manual_seed(6)
    z = torch.randn(4, K, generator=gen)
    assert pca_loss(z, z).item() == 0
    assert pca_loss(z + 2, z).item() == pytest.approx(4)
    with pytest.raises(ValueError):
        pca_loss(z, z[0])
    v = torch.randn(4, V, 3, generator=gen)
    shift = torch.tensor([0.003, 0.0, 0.004])  # 5 mm
    err = vertex_error_mm(v + shift, v)
    torch.testing.assert_close(err, torch.full((4,), 5.0), rtol=1e-4, atol=0)
    expected = (0.005 / MESH_LOSS_SCALE_M) ** 2
    assert mesh_loss(v + shift, v).item() == pytest.approx(expected, rel=1e-4)
    assert mesh_loss(v + shift, v, scale_m=0.005).item() == pytest.approx(1, rel=1e-4)

    dec = MeshDecoder.from_arrays(pca.mean, pca.components, pca.std)
    zero = shape_loss(z, z + 1, dec, 1.0, 0.0)
    assert zero.mesh.item() == 0 and zero.total.item() == pytest.approx(1)
    both = shape_loss(z, z + 1, dec, 0.5, 0.5, scale_m=dec.rms_vertex_std_m)
    # A unit error in every whitened coefficient is exactly the model's RMS deviation.
    assert both.mesh.item() == pytest.approx(1, rel=1e-4)


def test_soft_iou():
    a = torch.zeros(3, 8, 8)
    b = torch.zeros(3, 8, 8)
    a[0, :4], b[0, :4] = 1, 1  # identical
    a[1, :4], b[1, 2:6] = 1, 1  # half overlap: 16 / 48
    iou = soft_iou(a, b)  # sample 2: both empty
    torch.testing.assert_close(iou, torch.tensor([1.0, 1 / 3, 1.0]))
    assert iou_loss(a, b).item() == pytest.approx((2 / 3) / 3)


# ---- training -----------------------------------------------------------------------------


def test_view_model_overfits_tiny_set():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(7)
    model = ViewModel(K, SMALL, SMALL_HEAD)
    images, _, height, sex = _inputs(8, gen)
    target = torch.randn(8, K, generator=gen)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(100):
        opt.zero_grad()
        loss = pca_loss(model(images, height, sex).z, target)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 10, (losses[0], losses[-1])


def test_mesh_loss_gradients_reach_encoder(pca):
    torch.manual_seed(0)
    model = ViewModel(K, SMALL, SMALL_HEAD)
    dec = MeshDecoder.from_arrays(pca.mean, pca.components, pca.std)
    images, _, height, sex = _inputs(4, torch.Generator().manual_seed(8))
    v_true = dec(torch.randn(4, K, generator=torch.Generator().manual_seed(9)))
    mesh_loss(dec(model(images, height, sex).z), v_true).backward()
    for name, p in model.encoder.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert all(p.grad is None for p in dec.parameters())
