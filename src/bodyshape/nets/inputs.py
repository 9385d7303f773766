"""From calibrated canvases (and what else is known) to a network's outputs: the one path
that training, evaluation and prediction all take.

A network's ``ModelSpec`` says what it reads (``InputConfig``: part channels, weight) and
whether it predicts poses; :func:`run_network` builds each view's channels with
``parts.part_channels`` and calls the network as its kind requires.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from bodyshape.nets.models import InputConfig
from bodyshape.parts import part_channels


@dataclass(frozen=True, eq=False)
class NetInput:
    """One batch as a network sees it.

    Attributes:
        front, side: (B, 1, H, W) float canvases in [0, 1].
        height_m: (B,) stature, meters. sex: (B,) long, 0 female, 1 male, -1 unknown.
        weight_kg: (B,) kg, NaN where unknown; None: unknown for all.
        front_parts, side_parts: (B, H, W) part labels (``parts.part_labels``) or None
            where unknown (mask inputs without landmarks).
    """

    front: Tensor
    side: Tensor
    height_m: Tensor
    sex: Tensor
    weight_kg: Tensor | None = None
    front_parts: Tensor | None = None
    side_parts: Tensor | None = None


@dataclass(frozen=True, eq=False)
class NetOutput:
    """z: (B, K) whitened coefficients; pose: (B, 2, P) front and side pose angles, radians,
    or (B, 1, P) for a single-view network; None without pose heads."""

    z: Tensor
    pose: Tensor | None


def view_channels(inputs: InputConfig, mask: Tensor, labels: Tensor | None) -> Tensor:
    """(B, inputs.channels, H, W): the mask alone, or with its part channels."""
    return part_channels(mask, labels) if inputs.parts else mask


def run_network(net: nn.Module, kind: str, view: str | None, x: NetInput) -> NetOutput:
    """Run a network of ``ModelSpec`` ``kind``/``view`` on a batch (module docs)."""
    inputs: InputConfig = net.inputs
    front = view_channels(inputs, x.front, x.front_parts)
    side = view_channels(inputs, x.side, x.side_parts)
    if kind == "view":
        out = net(front if view == "front" else side, x.height_m, x.sex, x.weight_kg)
        return NetOutput(out.z, None if out.pose is None else out.pose[:, None])
    out = net(front, side, x.height_m, x.sex, x.weight_kg)
    return NetOutput(out.z, out.pose)


def to_device(x: NetInput, device: torch.device) -> NetInput:
    """The batch on ``device``."""
    def move(t: Tensor | None) -> Tensor | None:
        return None if t is None else t.to(device, non_blocking=True)

    return NetInput(*(move(getattr(x, f)) for f in ("front", "side", "height_m", "sex",
                                                     "weight_kg", "front_parts",
                                                     "side_parts")))
