"""Silhouette networks that predict whitened PCA shape coefficients (and each view's pose).

Inputs per view: a calibrated canvas ``(B, C, H, W)`` float in [0, 1] (any ``H, W >= 32``;
128 by default) with ``C = InputConfig.channels``: the silhouette, plus one channel per
part group when the network is part-aware (``parts.part_channels``, all zero when a view's
parts are unknown); stature ``(B,)`` meters; sex ``(B,)`` long (0 female, 1 male, -1
unknown); and, for weight-aware networks, weight ``(B,)`` kg (NaN unknown). Outputs:
whitened coefficients ``z = coeffs / std``, shape ``(B, K)``, and with ``pose_dim > 0`` each
view's pose angles, radians (``body.pose.POSE_NAMES``).

* :class:`ViewModel`: one view (front *or* side): encoder + MLP head on ``[features, aux]``.
* :class:`TwoChannelModel`: the "single 2-channel model" ablation baseline: front and side
  stacked as channels of one image through one encoder.
* :class:`FusionModel`: two pretrained :class:`ViewModel` branches whose penultimate head
  activations are concatenated (with the aux features) and fed to a fusion MLP.

The encoder is ``nets.encoder``, the PCA decoding layer ``nets.decoder``. Nothing here reads
files: weights and PCA arrays are passed in by the caller.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from bodyshape.nets.encoder import Encoder, EncoderConfig
from bodyshape.parts import PART_GROUPS

logger = logging.getLogger(__name__)

HEIGHT_MEAN_M = 1.7
"""Stature that maps to 0 in :func:`aux_features`, meters."""
HEIGHT_SCALE_M = 0.1
"""Stature difference that maps to 1 in :func:`aux_features`, meters (about one adult std)."""
WEIGHT_MEAN_KG = 70.0
"""Weight that maps to 0 in :func:`aux_features`, kg."""
WEIGHT_SCALE_KG = 15.0
"""Weight difference that maps to 1 in :func:`aux_features`, kg (about one adult std)."""
AUX_DIM = 4
"""Width of :func:`aux_features` without weight: normalized height, is_female, is_male,
is_unknown; weight-aware networks add normalized weight and weight_known."""
MIN_IMAGE_SIZE = 32


# --------------------------------------------------------------------------------------------
# Configs and outputs
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InputConfig:
    """What a network sees besides the silhouette, stature and sex.

    Attributes:
        parts: each view also gets one channel per part group (``parts.PART_GROUPS``),
            the article's colour segmentation map.
        weight: the aux features carry the body weight (kg) and whether it is known.
    """

    parts: bool = False
    weight: bool = False

    @property
    def channels(self) -> int:
        """Image channels per view."""
        return 1 + (len(PART_GROUPS) if self.parts else 0)

    @property
    def aux_dim(self) -> int:
        """Width of the aux features."""
        return AUX_DIM + (2 if self.weight else 0)


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
    """z: (B, K) whitened coefficients; features: (B, D) penultimate head activations;
    pose: (B, P) the view's pose angles (radians), or (B, 2, P) front and side for the
    two-channel model; None without a pose head."""

    z: Tensor
    features: Tensor
    pose: Tensor | None = None


@dataclass(frozen=True)
class FusionOutput:
    """z: (B, K) fused prediction; front_z, side_z: (B, K) the branches' own predictions;
    pose: (B, 2, P) front and side pose angles (radians, from the branches), or None."""

    z: Tensor
    front_z: Tensor
    side_z: Tensor
    pose: Tensor | None = None


# --------------------------------------------------------------------------------------------
# Pure functions
# --------------------------------------------------------------------------------------------


def aux_features(height_m: Tensor, sex: Tensor, weight_kg: Tensor | None = None,
                 with_weight: bool = False) -> Tensor:
    """Auxiliary inputs as a (B, 4) float tensor, or (B, 6) ``with_weight``.

    Args:
        height_m: (B,) stature, meters.
        sex: (B,) integer, 0 female, 1 male, -1 unknown.
        weight_kg: (B,) body weight, kg, NaN where unknown; None: all unknown.
        with_weight: append the weight features (weight-aware networks).

    Returns:
        ``[(h - 1.7) / 0.1, is_female, is_male, is_unknown]`` (+ ``[(w - 70) / 15,
        weight_known]``, the first 0 when unknown), dtype of ``height_m``. Unknown sex is
        all-zero in the two sex slots (not 0.5/0.5) plus an explicit flag, so the head can
        learn a separate offset for "unknown" instead of averaging the sexes; unknown weight
        likewise.
    """
    if height_m.ndim != 1 or sex.shape != height_m.shape:
        raise ValueError(f"height (B,) and sex (B,) expected, got {height_m.shape}, {sex.shape}")
    if not torch.all((sex == -1) | (sex == 0) | (sex == 1)):
        raise ValueError("sex must be 0 (female), 1 (male) or -1 (unknown)")
    dtype = height_m.dtype if height_m.is_floating_point() else torch.float32
    h = (height_m.to(dtype) - HEIGHT_MEAN_M) / HEIGHT_SCALE_M
    female, male, unknown = ((sex == s).to(dtype) for s in (0, 1, -1))
    cols = [h, female, male, unknown]
    if with_weight:
        if weight_kg is None:
            weight_kg = torch.full_like(h, float("nan"))
        if weight_kg.shape != height_m.shape:
            raise ValueError(f"weight (B,) expected, got {tuple(weight_kg.shape)}")
        known = torch.isfinite(weight_kg)
        w = torch.where(known, (weight_kg.to(dtype) - WEIGHT_MEAN_KG) / WEIGHT_SCALE_KG,
                        torch.zeros_like(h))
        cols += [w, known.to(dtype)]
    return torch.stack(cols, dim=1)


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
    """An encoder over ``views x inputs.channels`` image channels + an MLP head on
    [features, aux], and an optional pose head on the head's penultimate features: the
    shared body of :class:`ViewModel` (one view) and :class:`TwoChannelModel` (two)."""

    def __init__(self, n_components: int, encoder: EncoderConfig, head: HeadConfig,
                 views: int, inputs: InputConfig, pose_dim: int) -> None:
        super().__init__()
        if pose_dim < 0:
            raise ValueError(f"pose_dim must be >= 0, got {pose_dim}")
        self.n_components, self.inputs, self.pose_dim, self.views = (n_components, inputs,
                                                                     pose_dim, views)
        self.encoder = Encoder(encoder, in_channels=views * inputs.channels)
        self.head = MLPHead(encoder.feature_dim + inputs.aux_dim, n_components, head)
        self.pose_head = nn.Linear(self.head.feature_dim, views * pose_dim) if pose_dim else None
        logger.debug("%s: %d parameters", type(self).__name__,
                     sum(p.numel() for p in self.parameters()))

    @property
    def feature_dim(self) -> int:
        return self.head.feature_dim

    def init_from_pca(self, mean_z: Tensor, weight_scale: float = 0.0) -> None:
        """See :func:`init_last_layer_from_pca`."""
        init_last_layer_from_pca(self.head.out, mean_z, weight_scale)

    def _run(self, image: Tensor, height_m: Tensor, sex: Tensor, weight_kg: Tensor | None
             ) -> ViewOutput:
        aux = aux_features(height_m, sex, weight_kg, self.inputs.weight).to(image.dtype)
        features = self.head.trunk(torch.cat([self.encoder(image), aux], dim=1))
        pose = None
        if self.pose_head is not None:
            pose = self.pose_head(features)
            if self.views == 2:
                pose = pose.reshape(-1, 2, self.pose_dim)
        return ViewOutput(z=self.head.out(features), features=features, pose=pose)


class ViewModel(_EncoderHead):
    """One view's canvas + aux -> whitened coefficients (and the view's pose).

    ``forward(image (B, C, H, W), height_m (B,), sex (B,), weight_kg (B,) | None) ->
    ViewOutput(z (B, K), features (B, head.hidden[-1]), pose (B, P) | None)``.
    """

    def __init__(self, n_components: int, encoder: EncoderConfig = EncoderConfig(),
                 head: HeadConfig = HeadConfig(), inputs: InputConfig = InputConfig(),
                 pose_dim: int = 0) -> None:
        super().__init__(n_components, encoder, head, 1, inputs, pose_dim)

    def forward(self, image: Tensor, height_m: Tensor, sex: Tensor,
                weight_kg: Tensor | None = None) -> ViewOutput:
        _check_images(image, self.inputs.channels, "image")
        return self._run(image, height_m, sex, weight_kg)


class TwoChannelModel(_EncoderHead):
    """Ablation baseline: front and side stacked as channels of one image, one encoder.

    ``forward(front (B, C, H, W), side (B, C, H, W), height_m (B,), sex (B,), weight_kg)
    -> ViewOutput`` (pose (B, 2, P)); both views must have the same size.
    """

    def __init__(self, n_components: int, encoder: EncoderConfig = EncoderConfig(),
                 head: HeadConfig = HeadConfig(), inputs: InputConfig = InputConfig(),
                 pose_dim: int = 0) -> None:
        super().__init__(n_components, encoder, head, 2, inputs, pose_dim)

    def forward(self, front: Tensor, side: Tensor, height_m: Tensor, sex: Tensor,
                weight_kg: Tensor | None = None) -> ViewOutput:
        _check_images(front, self.inputs.channels, "front")
        _check_images(side, self.inputs.channels, "side")
        if front.shape != side.shape:
            raise ValueError(f"front and side differ in shape: {front.shape} vs {side.shape}")
        return self._run(torch.cat([front, side], dim=1), height_m, sex, weight_kg)


class FusionModel(nn.Module):
    """Front and side :class:`ViewModel` branches + a fusion MLP on their penultimate features.

    ``forward(front, side, height_m, sex, weight_kg=None) -> FusionOutput(z, front_z,
    side_z, pose)``; the pose comes from the branches' pose heads.

    The three ablation modes are chosen with :meth:`param_groups`: frozen branches, branches
    at the same LR, or at a lower LR. When frozen, :meth:`train` keeps the branches in eval
    mode so that any BatchNorm running statistics (``EncoderConfig(norm="batch")``) and dropout
    stay as pretrained.
    """

    def __init__(self, front: ViewModel, side: ViewModel, head: HeadConfig = HeadConfig((256,))):
        super().__init__()
        if front.n_components != side.n_components:
            raise ValueError(f"branches predict {front.n_components} vs {side.n_components} coeffs")
        if front.inputs != side.inputs or front.pose_dim != side.pose_dim:
            raise ValueError("the front and side branches take different inputs or poses")
        self.n_components = front.n_components
        self.inputs, self.pose_dim = front.inputs, front.pose_dim
        self.front = front
        self.side = side
        self.head = MLPHead(front.feature_dim + side.feature_dim + self.inputs.aux_dim,
                            self.n_components, head)
        self.branches_frozen = False

    @classmethod
    def from_configs(
        cls,
        n_components: int,
        encoder: EncoderConfig = EncoderConfig(),
        branch_head: HeadConfig = HeadConfig(),
        fusion_head: HeadConfig = HeadConfig((256,)),
        inputs: InputConfig = InputConfig(),
        pose_dim: int = 0,
    ) -> FusionModel:
        """Fresh (untrained) branches; normally the branches are pretrained ViewModels."""
        front = ViewModel(n_components, encoder, branch_head, inputs, pose_dim)
        side = ViewModel(n_components, encoder, branch_head, inputs, pose_dim)
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

    def forward(self, front: Tensor, side: Tensor, height_m: Tensor, sex: Tensor,
                weight_kg: Tensor | None = None) -> FusionOutput:
        f = self.front(front, height_m, sex, weight_kg)
        s = self.side(side, height_m, sex, weight_kg)
        aux = aux_features(height_m, sex, weight_kg, self.inputs.weight).to(f.features.dtype)
        z = self.head(torch.cat([f.features, s.features, aux], dim=1))
        pose = None if f.pose is None else torch.stack([f.pose, s.pose], dim=1)
        return FusionOutput(z=z, front_z=f.z, side_z=s.z, pose=pose)
