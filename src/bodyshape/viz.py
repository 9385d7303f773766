"""Feature maps of the trained encoders, per view and layer: how front bias was diagnosed.

``feature_maps`` runs one calibrated silhouette through an encoder and records the output of
its stem and of every residual stage (forward hooks); ``save_feature_grids`` writes one PNG
grid per (view, layer), every channel min-max normalized on its own.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from bodyshape.fileio import atomic_path

logger = logging.getLogger(__name__)


def encoders_of(model: nn.Module) -> dict[str, nn.Module]:
    """The image encoders of a network by view name: {"front", "side"} for fusion models,
    {"front"} or {"side"} for view models, {"front+side"} for the two-channel model."""
    if hasattr(model, "front") and hasattr(model, "side"):
        return {"front": model.front.encoder, "side": model.side.encoder}
    if getattr(model.encoder, "in_channels", 1) == 2:
        return {"front+side": model.encoder}
    return {"view": model.encoder}


@torch.no_grad()
def feature_maps(encoder: nn.Module, image: torch.Tensor) -> dict[str, np.ndarray]:
    """Activations of the stem and of each residual block for one input.

    Args:
        encoder: a ``nets.models.Encoder``.
        image: (C, H, W) float canvas(es) in [0, 1].
    Returns:
        {"stem": (C0, h0, w0), "stage1": ..., ...} float32 arrays.
    """
    out: dict[str, np.ndarray] = {}
    hooks = [encoder.stem.register_forward_hook(
        lambda m, i, o: out.__setitem__("stem", o[0].numpy()))]
    for k, block in enumerate(encoder.stages):
        hooks.append(block.register_forward_hook(
            lambda m, i, o, k=k: out.__setitem__(f"stage{k + 1}", o[0].numpy())))
    try:
        encoder.eval()(image[None])
    finally:
        for h in hooks:
            h.remove()
    return out


def save_feature_grids(maps: dict[str, np.ndarray], out: str | os.PathLike, prefix: str,
                       max_channels: int = 64) -> list[Path]:
    """One PNG per layer: up to ``max_channels`` channels tiled in a square grid."""
    import cv2

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for layer, fm in maps.items():
        c, h, w = fm.shape
        c = min(c, max_channels)
        cols = math.ceil(math.sqrt(c))
        rows = math.ceil(c / cols)
        scale = max(1, 96 // max(h, w))  # small late-stage maps are enlarged to stay legible
        tile_h, tile_w = h * scale + 2, w * scale + 2
        grid = np.full((rows * tile_h, cols * tile_w), 255, np.uint8)
        for i in range(c):
            ch = fm[i]
            lo, hi = float(ch.min()), float(ch.max())
            img = np.zeros_like(ch) if hi <= lo else (ch - lo) / (hi - lo)
            img = np.kron(img, np.ones((scale, scale)))
            r, q = divmod(i, cols)
            grid[r * tile_h + 1:r * tile_h + 1 + h * scale,
                 q * tile_w + 1:q * tile_w + 1 + w * scale] = (img * 255).astype(np.uint8)
        path = out / f"{prefix}_{layer}.png"
        with atomic_path(path) as tmp:  # the temporary name keeps the .png suffix
            if not cv2.imwrite(str(tmp), grid):
                raise OSError(f"cannot write {path}")
        paths.append(path)
    return paths
