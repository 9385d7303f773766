"""The PCA basis as a layer: whitened coefficients -> vertices, for the mesh loss."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn


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
