"""Silhouette networks that predict whitened PCA shape coefficients.

Inputs: calibrated binary silhouettes ``(B, 1, H, W)`` float in [0, 1] (any ``H, W >= 32``;
128 by default), stature ``(B,)`` in meters and sex ``(B,)`` long (0 female, 1 male,
-1 unknown). Outputs: whitened coefficients ``z = coeffs / std``, shape ``(B, K)``, for any
number of components ``K``.

* :class:`ViewModel`: one view (front *or* side): encoder + MLP head on ``[features, aux]``.
* :class:`TwoChannelModel`: the "single 2-channel model" ablation baseline: front and side
  stacked as channels of one image through one encoder.
* :class:`FusionModel`: two pretrained :class:`ViewModel` branches whose penultimate head
  activations are concatenated (with the aux features) and fed to a fusion MLP.
* :class:`MeshDecoder`: the PCA basis as a (frozen by default) linear layer, whitened
  coefficients -> vertices, for the mesh loss.

Nothing here reads files: weights and PCA arrays are passed in by the caller.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

logger = logging.getLogger(__name__)

HEIGHT_MEAN_M = 1.7
"""Stature that maps to 0 in :func:`aux_features`, meters."""
HEIGHT_SCALE_M = 0.1
"""Stature difference that maps to 1 in :func:`aux_features`, meters (about one adult std)."""
AUX_DIM = 4
"""Width of :func:`aux_features`: normalized height, is_female, is_male, is_unknown."""
MIN_IMAGE_SIZE = 32


# --------------------------------------------------------------------------------------------
# Configs and outputs
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EncoderConfig:
    """A small ResNet-style image encoder.

    Attributes:
        widths: channels per stage; each stage halves the resolution (the stem halves it once
            more), so a 128 px input ends at ``128 / 2**(len(widths) + 1)`` = 4 px by default.
        blocks: residual BasicBlocks per stage (1 or 2).
        feature_dim: width of the output feature vector.
        norm: "group" (default) or "batch"; see :func:`_norm_layer` for why GroupNorm.
        groups: GroupNorm groups (reduced to a divisor of the channel count when needed).
        pool_grid: the last feature map is average-pooled to a ``pool_grid x pool_grid``
            grid and flattened before the projection: 1 is global average pooling; larger
            grids keep *where* features are, which matters for regressing body proportions
            from a centred, scale-normalized silhouette.
    """

    widths: tuple[int, ...] = (16, 32, 64, 128)
    blocks: int = 1
    feature_dim: int = 128
    norm: Literal["group", "batch"] = "group"
    groups: int = 8
    pool_grid: int = 4

    def __post_init__(self) -> None:
        if not self.widths or any(w <= 0 for w in self.widths):
            raise ValueError(f"widths must be positive, got {self.widths}")
        if self.blocks < 1:
            raise ValueError(f"blocks must be >= 1, got {self.blocks}")
        if self.norm not in ("group", "batch"):
            raise ValueError(f"norm must be 'group' or 'batch', got {self.norm!r}")
        if self.feature_dim <= 0 or self.groups <= 0:
            raise ValueError("feature_dim and groups must be positive")


@dataclass(frozen=True)
class HeadConfig:
    """An MLP head: ``hidden`` Linear+ReLU layers, then a linear output layer.

    The last hidden activation (width ``hidden[-1]``) is the "penultimate features" that
    :class:`FusionModel` reuses.
    """

    hidden: tuple[int, ...] = (256, 128)
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if not self.hidden or any(h <= 0 for h in self.hidden):
            raise ValueError(f"hidden must be non-empty and positive, got {self.hidden}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


@dataclass(frozen=True)
class ViewOutput:
    """z: (B, K) whitened coefficients; features: (B, D) penultimate head activations."""

    z: Tensor
    features: Tensor


@dataclass(frozen=True)
class FusionOutput:
    """z: (B, K) fused prediction; front_z, side_z: (B, K) the branches' own predictions."""

    z: Tensor
    front_z: Tensor
    side_z: Tensor


# --------------------------------------------------------------------------------------------
# Pure functions
# --------------------------------------------------------------------------------------------


def aux_features(height_m: Tensor, sex: Tensor) -> Tensor:
    """Auxiliary inputs as a (B, 4) float tensor.

    Args:
        height_m: (B,) stature, meters.
        sex: (B,) integer, 0 female, 1 male, -1 unknown.

    Returns:
        (B, 4): ``[(h - 1.7) / 0.1, is_female, is_male, is_unknown]``, dtype of ``height_m``.
        Unknown sex is all-zero in the two sex slots (not 0.5/0.5) plus an explicit flag, so
        the head can learn a separate offset for "unknown" instead of averaging the sexes.
    """
    if height_m.ndim != 1 or sex.shape != height_m.shape:
        raise ValueError(f"height (B,) and sex (B,) expected, got {height_m.shape}, {sex.shape}")
    if not torch.all((sex == -1) | (sex == 0) | (sex == 1)):
        raise ValueError("sex must be 0 (female), 1 (male) or -1 (unknown)")
    dtype = height_m.dtype if height_m.is_floating_point() else torch.float32
    h = (height_m.to(dtype) - HEIGHT_MEAN_M) / HEIGHT_SCALE_M
    female, male, unknown = ((sex == s).to(dtype) for s in (0, 1, -1))
    return torch.stack([h, female, male, unknown], dim=1)


def init_last_layer_from_pca(linear: nn.Linear, mean_z: Tensor, weight_scale: float = 0.0) -> None:
    """Start a coefficient-predicting layer at the training mean.

    Sets ``bias = mean_z`` and multiplies the weights by ``weight_scale`` (0: zeros), so the
    untrained network predicts the mean whitened coefficients (loss = their variance, ~1)
    instead of random offsets that the rest of training must first undo.

    Args:
        linear: the output layer, ``out_features == K``.
        mean_z: (K,) mean of the training whitened coefficients (~0 by construction of the
            PCA, but not exactly so for a training subset).
        weight_scale: factor applied to the current weights; 0 gives exactly the mean for any
            input (the encoder then gets gradients from the second step on).
    """
    mean_z = torch.as_tensor(mean_z)
    if mean_z.shape != (linear.out_features,):
        raise ValueError(f"mean_z must be ({linear.out_features},), got {tuple(mean_z.shape)}")
    if linear.bias is None:
        raise ValueError("the layer needs a bias")
    with torch.no_grad():
        linear.weight.mul_(weight_scale)
        linear.bias.copy_(mean_z.to(linear.bias))


def _check_images(x: Tensor, channels: int, name: str) -> None:
    if x.ndim != 4 or x.shape[1] != channels:
        raise ValueError(f"{name} must be (B, {channels}, H, W), got {tuple(x.shape)}")
    if min(x.shape[-2:]) < MIN_IMAGE_SIZE:
        raise ValueError(f"{name} must be at least {MIN_IMAGE_SIZE} px, got {tuple(x.shape)}")


# --------------------------------------------------------------------------------------------
# Encoder
# --------------------------------------------------------------------------------------------


def _norm_layer(cfg: EncoderConfig, channels: int) -> nn.Module:
    # GroupNorm by default: on 2 CPU cores batches are small (8-32) and, after the stride-2
    # stages, a 4x4 map gives BatchNorm few samples per statistic; GroupNorm is per sample, so
    # train and eval behave the same (batched == per-sample always), there are no running
    # statistics to drift between synthetic training and real photos, and frozen fusion
    # branches need no eval-mode care. Measured on 2 CPU cores at batch 32, 128 px, its
    # forward+backward time is within noise of BatchNorm's.
    if cfg.norm == "batch":
        return nn.BatchNorm2d(channels)
    return nn.GroupNorm(math.gcd(cfg.groups, channels), channels)


class BasicBlock(nn.Module):
    """Two 3x3 convs with a residual shortcut (1x1 conv when the shape changes).

    (B, c_in, H, W) -> (B, c_out, ceil(H / stride), ceil(W / stride)).
    """

    def __init__(self, cfg: EncoderConfig, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.norm1 = _norm_layer(cfg, c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.norm2 = _norm_layer(cfg, c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=False), _norm_layer(cfg, c_out)
            )

    def forward(self, x: Tensor) -> Tensor:
        y = F.relu(self.norm1(self.conv1(x)))
        y = self.norm2(self.conv2(y))
        return F.relu(y + self.shortcut(x))


class Encoder(nn.Module):
    """Silhouettes (B, C, H, W) in [0, 1] -> features (B, feature_dim), post-ReLU."""

    def __init__(self, cfg: EncoderConfig = EncoderConfig(), in_channels: int = 1) -> None:
        super().__init__()
        self.cfg = cfg
        self.in_channels = in_channels
        w0 = cfg.widths[0]
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, w0, 3, 2, 1, bias=False), _norm_layer(cfg, w0), nn.ReLU()
        )
        blocks: list[nn.Module] = []
        c_in = w0
        for width in cfg.widths:
            for j in range(cfg.blocks):
                blocks.append(BasicBlock(cfg, c_in, width, stride=2 if j == 0 else 1))
                c_in = width
        self.stages = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(cfg.pool_grid)
        self.proj = nn.Linear(c_in * cfg.pool_grid ** 2, cfg.feature_dim)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> Tensor:
        # Silhouettes are {0, 1}; centring them keeps the stem's input zero-mean-ish.
        x = self.stages(self.stem(x * 2.0 - 1.0))
        return F.relu(self.proj(self.pool(x).flatten(1)))


class MLPHead(nn.Module):
    """(B, d_in) -> trunk (B, hidden[-1]) -> out (B, K). Call ``trunk`` and ``out`` separately."""

    def __init__(self, d_in: int, n_out: int, cfg: HeadConfig = HeadConfig()) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for h in cfg.hidden:
            layers += [nn.Linear(d_in, h), nn.ReLU()]
            if cfg.dropout > 0:
                layers.append(nn.Dropout(cfg.dropout))
            d_in = h
        self.trunk = nn.Sequential(*layers)
        self.out = nn.Linear(d_in, n_out)
        self.feature_dim = d_in

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.trunk(x))


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------


class _EncoderHead(nn.Module):
    """An encoder over ``in_channels`` silhouette channels + an MLP head on [features, aux]:
    the shared body of :class:`ViewModel` (1 channel) and :class:`TwoChannelModel` (2)."""

    def __init__(self, n_components: int, encoder: EncoderConfig, head: HeadConfig,
                 in_channels: int) -> None:
        super().__init__()
        self.n_components = n_components
        self.encoder = Encoder(encoder, in_channels=in_channels)
        self.head = MLPHead(encoder.feature_dim + AUX_DIM, n_components, head)
        logger.debug("%s: %d parameters", type(self).__name__,
                     sum(p.numel() for p in self.parameters()))

    @property
    def feature_dim(self) -> int:
        return self.head.feature_dim

    def init_from_pca(self, mean_z: Tensor, weight_scale: float = 0.0) -> None:
        """See :func:`init_last_layer_from_pca`."""
        init_last_layer_from_pca(self.head.out, mean_z, weight_scale)

    def _run(self, image: Tensor, height_m: Tensor, sex: Tensor) -> ViewOutput:
        x = torch.cat([self.encoder(image), aux_features(height_m, sex).to(image.dtype)], dim=1)
        features = self.head.trunk(x)
        return ViewOutput(z=self.head.out(features), features=features)


class ViewModel(_EncoderHead):
    """One view's silhouette + aux -> whitened coefficients.

    ``forward(image (B, 1, H, W), height_m (B,), sex (B,)) -> ViewOutput(z (B, K),
    features (B, head.hidden[-1]))``.
    """

    def __init__(self, n_components: int, encoder: EncoderConfig = EncoderConfig(),
                 head: HeadConfig = HeadConfig()) -> None:
        super().__init__(n_components, encoder, head, in_channels=1)

    def forward(self, image: Tensor, height_m: Tensor, sex: Tensor) -> ViewOutput:
        _check_images(image, 1, "image")
        return self._run(image, height_m, sex)


class TwoChannelModel(_EncoderHead):
    """Ablation baseline: front and side as the two channels of one image, one encoder.

    ``forward(front (B, 1, H, W), side (B, 1, H, W), height_m (B,), sex (B,)) -> ViewOutput``;
    both views must have the same size.
    """

    def __init__(self, n_components: int, encoder: EncoderConfig = EncoderConfig(),
                 head: HeadConfig = HeadConfig()) -> None:
        super().__init__(n_components, encoder, head, in_channels=2)

    def forward(self, front: Tensor, side: Tensor, height_m: Tensor, sex: Tensor) -> ViewOutput:
        _check_images(front, 1, "front")
        _check_images(side, 1, "side")
        if front.shape != side.shape:
            raise ValueError(f"front and side differ in shape: {front.shape} vs {side.shape}")
        return self._run(torch.cat([front, side], dim=1), height_m, sex)


class FusionModel(nn.Module):
    """Front and side :class:`ViewModel` branches + a fusion MLP on their penultimate features.

    ``forward(front, side, height_m, sex) -> FusionOutput(z, front_z, side_z)``, all (B, K).

    The three ablation modes are chosen with :meth:`param_groups`: frozen branches, branches
    at the same LR, or at a lower LR. When frozen, :meth:`train` keeps the branches in eval
    mode so that any BatchNorm running statistics (``EncoderConfig(norm="batch")``) and dropout
    stay as pretrained.
    """

    def __init__(self, front: ViewModel, side: ViewModel, head: HeadConfig = HeadConfig((256,))):
        super().__init__()
        if front.n_components != side.n_components:
            raise ValueError(f"branches predict {front.n_components} vs {side.n_components} coeffs")
        self.n_components = front.n_components
        self.front = front
        self.side = side
        self.head = MLPHead(front.feature_dim + side.feature_dim + AUX_DIM, self.n_components, head)
        self.branches_frozen = False

    @classmethod
    def from_configs(
        cls,
        n_components: int,
        encoder: EncoderConfig = EncoderConfig(),
        branch_head: HeadConfig = HeadConfig(),
        fusion_head: HeadConfig = HeadConfig((256,)),
    ) -> FusionModel:
        """Fresh (untrained) branches; normally the branches are pretrained ViewModels."""
        front = ViewModel(n_components, encoder, branch_head)
        side = ViewModel(n_components, encoder, branch_head)
        return cls(front, side, fusion_head)

    def init_from_pca(self, mean_z: Tensor, weight_scale: float = 0.0) -> None:
        """Initialize the fusion output layer only (branches are assumed pretrained)."""
        init_last_layer_from_pca(self.head.out, mean_z, weight_scale)

    def set_branches_frozen(self, frozen: bool) -> None:
        """Freeze (requires_grad False, eval mode) or unfreeze both branches."""
        self.branches_frozen = frozen
        for p in self.branch_parameters():
            p.requires_grad_(not frozen)
        self.train(self.training)

    def branch_parameters(self) -> list[nn.Parameter]:
        return [*self.front.parameters(), *self.side.parameters()]

    def param_groups(
        self, base_lr: float, branch_lr_scale: float = 0.1, freeze_branches: bool = False
    ) -> list[dict[str, Any]]:
        """Optimizer parameter groups for one of the three fine-tuning modes.

        Also sets the freeze state (:meth:`set_branches_frozen`), so call this, not just
        read it, before building the optimizer.

        Args:
            base_lr: LR of the fusion head.
            branch_lr_scale: branch LR = ``base_lr * branch_lr_scale`` (1: same LR, e.g. 0.1:
                lower LR); ignored when frozen.
            freeze_branches: frozen mode: branches are excluded from the groups.

        Returns:
            ``[{"name": "fusion", "params", "lr"}]`` plus, unless frozen, a ``"branches"``
            group; extra keys such as ``name`` are kept by torch optimizers.
        """
        self.set_branches_frozen(freeze_branches)
        groups: list[dict[str, Any]] = [
            {"name": "fusion", "params": list(self.head.parameters()), "lr": base_lr}
        ]
        if not freeze_branches:
            lr = base_lr * branch_lr_scale
            groups.append({"name": "branches", "params": self.branch_parameters(), "lr": lr})
        return groups

    def train(self, mode: bool = True) -> FusionModel:
        super().train(mode)
        if self.branches_frozen:
            self.front.eval()
            self.side.eval()
        return self

    def forward(self, front: Tensor, side: Tensor, height_m: Tensor, sex: Tensor) -> FusionOutput:
        f = self.front(front, height_m, sex)
        s = self.side(side, height_m, sex)
        aux = aux_features(height_m, sex).to(f.features.dtype)
        z = self.head(torch.cat([f.features, s.features, aux], dim=1))
        return FusionOutput(z=z, front_z=f.z, side_z=s.z)


# --------------------------------------------------------------------------------------------
# PCA decoder
# --------------------------------------------------------------------------------------------


class MeshDecoder(nn.Module):
    """Whitened coefficients (B, K) -> vertices (B, V, 3), meters, through the PCA basis.

    ``linear.weight`` (3V, K) = ``(components[:K] * std[:K, None]).T`` and ``linear.bias``
    (3V,) = ``mean.reshape(-1)``, so ``forward(z) == mean + (z * std) @ components``. Frozen by
    default (parameters with requires_grad False, still moved by ``.to()``); ``trainable=True``
    lets the basis be fine-tuned.

    Attributes:
        n_vertices: V.
        rms_vertex_std_m: sqrt(sum(std[:K]^2) / V), the RMS per-vertex deviation of the
            training shapes in the K-component space (at construction), meters; the natural
            ``scale_m`` for :func:`bodyshape.nets.losses.mesh_loss`.
    """

    def __init__(self, mean: Tensor, components: Tensor, std: Tensor, trainable: bool = False):
        super().__init__()
        mean = torch.as_tensor(mean, dtype=torch.float32)
        components = torch.as_tensor(components, dtype=torch.float32)
        std = torch.as_tensor(std, dtype=torch.float32)
        if mean.ndim != 2 or mean.shape[1] != 3:
            raise ValueError(f"mean must be (V, 3), got {tuple(mean.shape)}")
        k = components.shape[0]
        if components.shape != (k, mean.numel()) or std.shape != (k,):
            raise ValueError(
                f"components (K, 3V) and std (K,) expected for V={mean.shape[0]}, "
                f"got {tuple(components.shape)}, {tuple(std.shape)}"
            )
        self.n_vertices = mean.shape[0]
        self.n_components = k
        self.linear = nn.Linear(k, mean.numel())
        with torch.no_grad():
            self.linear.weight.copy_((components * std[:, None]).T)
            self.linear.bias.copy_(mean.reshape(-1))
        self.linear.requires_grad_(trainable)
        self.rms_vertex_std_m = float(torch.sqrt((std.double() ** 2).sum() / self.n_vertices))

    @classmethod
    def from_arrays(
        cls,
        mean: np.ndarray,
        components: np.ndarray,
        std: np.ndarray,
        n_components: int | None = None,
        trainable: bool = False,
    ) -> MeshDecoder:
        """From numpy arrays (mean (V, 3), components (K, 3V), std (K,)), keeping the first
        ``n_components`` (default all)."""
        k = components.shape[0] if n_components is None else n_components
        if not 1 <= k <= components.shape[0]:
            raise ValueError(f"n_components must be in [1, {components.shape[0]}], got {k}")
        arrays = (mean, components[:k], std[:k])
        mean_t, comp_t, std_t = (torch.tensor(np.asarray(a), dtype=torch.float32) for a in arrays)
        return cls(mean_t, comp_t, std_t, trainable=trainable)

    @classmethod
    def from_shape_model(
        cls, model: Any, n_components: int | None = None, trainable: bool = False
    ) -> MeshDecoder:
        """From anything with ``mean``, ``components`` and ``std`` arrays (a ShapeModel)."""
        return cls.from_arrays(model.mean, model.components, model.std, n_components, trainable)

    def forward(self, z: Tensor) -> Tensor:
        if z.ndim != 2 or z.shape[1] != self.n_components:
            raise ValueError(f"z must be (B, {self.n_components}), got {tuple(z.shape)}")
        return self.linear(z).reshape(z.shape[0], self.n_vertices, 3)
