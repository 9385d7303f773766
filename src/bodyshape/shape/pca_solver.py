"""Principal axes of centered data, for :meth:`bodyshape.shape.pca.ShapeModel.fit`.

An exact eigendecomposition (of the N x N Gram matrix or the D x D covariance, whichever is
smaller) for small problems, a randomized range finder with power iterations for large ones.
"""

from __future__ import annotations

import numpy as np

EXACT_SOLVER_MAX = 1000
"""``solver="auto"`` uses an exact eigendecomposition when min(N, 3V) is at most this."""

RANDOMIZED_POWER_ITERATIONS = 2
"""Power iterations of the randomized solver (accurate for the leading components of spectra
that decay like body shapes'; the tail of the 200-long recorded spectrum is approximate)."""

_RANK_TOL = 1e-10  # components with variance below this fraction of the total are dropped


def _orthonormal(a: np.ndarray) -> np.ndarray:
    """Orthonormal basis (float32) of the columns of a tall matrix."""
    return np.linalg.qr(a)[0].astype(np.float32, copy=False)


def _principal_axes(
    x: np.ndarray, n_spectrum: int, n_axes: int, solver: str, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Leading principal axes of centered data ``x`` (N, D).

    Returns ``(variances (n_spectrum,) float64, axes (n_axes, D) float64)``, variances in
    decreasing order with ``ddof=1``; axes orthonormal rows.
    """
    n, d = x.shape
    if solver == "auto":
        solver = "exact" if min(n, d) <= EXACT_SOLVER_MAX else "randomized"
    if solver == "exact":
        if n <= d:  # Gram matrix N x N
            x64 = x.astype(np.float64)
            gram = x64 @ x64.T
            evals, evecs = np.linalg.eigh(gram)
            evals, evecs = evals[::-1], evecs[:, ::-1]
            evals = np.clip(evals, 0.0, None)
            s = np.sqrt(evals[:n_axes])
            axes = (x64.T @ evecs[:, :n_axes]) / np.where(s > 0, s, 1.0)
            axes = axes.T
        else:  # covariance D x D
            x64 = x.astype(np.float64)
            evals, evecs = np.linalg.eigh(x64.T @ x64)
            evals, evecs = np.clip(evals[::-1], 0.0, None), evecs[:, ::-1]
            axes = evecs[:, :n_axes].T
        return evals[:n_spectrum] / (n - 1), np.ascontiguousarray(axes)
    if solver != "randomized":
        raise ValueError(f"solver must be 'auto', 'exact' or 'randomized', got {solver!r}")
    # Randomized range finder with power iterations (Halko et al. 2011): float32 products
    # with X (the cost: 2 * RANDOMIZED_POWER_ITERATIONS + 2 passes), small QRs in between.
    width = min(n_spectrum + 20, n, d)
    y = x @ rng.standard_normal((d, width), dtype=np.float32)
    for _ in range(RANDOMIZED_POWER_ITERATIONS):
        q = _orthonormal(y.astype(np.float64))  # (N, width)
        y = x @ _orthonormal(x.T @ q)
    q = _orthonormal(y.astype(np.float64))
    b = (x.T @ q).T.astype(np.float64)  # (width, D) = Q^T X
    _, sing, vt = np.linalg.svd(b, full_matrices=False)
    return sing[:n_spectrum] ** 2 / (n - 1), vt[:n_axes]


def _fix_signs(axes: np.ndarray) -> np.ndarray:
    """Deterministic signs: the largest-magnitude entry of each axis is positive."""
    idx = np.argmax(np.abs(axes), axis=1)
    signs = np.sign(axes[np.arange(len(axes)), idx])
    signs[signs == 0] = 1.0
    return axes * signs[:, None]
