"""Distributions of the whitened PCA coefficients, used to sample bodies from a shape model.

:class:`~bodyshape.shape.pca.ShapeModel` samples its whitened coefficients in one of three
ways (:data:`SAMPLING_METHODS`):

- ``"gaussian"``: independent ``N(0, 1)`` per component (the PCA coefficient covariance is
  diagonal);
- ``"per-sex"``: a full-covariance Gaussian of the coefficients of each sex (:class:`SexStats`);
- ``"gmm"``: a Gaussian mixture fitted on the whitened coefficients (:class:`MixtureParams`).

This module holds those distributions, their fitting and the drawing; the model multiplies
the draws by its ``std`` and decodes them (:class:`SampledShapes`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

logger = logging.getLogger(__name__)

SEXES = ("female", "male")
"""The sex labels accepted by :meth:`ShapeModel.fit` (besides ``None``, unknown)."""

SAMPLING_METHODS = ("gaussian", "per-sex", "gmm")


def _frozen(a: Any, dtype, ndim: int, name: str) -> np.ndarray:
    a = np.array(a, dtype=dtype, order="C")  # always a private copy
    if a.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {a.shape}")
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class SexStats:
    """Full-covariance Gaussians of the *whitened* coefficients of each sex.

    Attributes:
        sexes: (S,) the sex labels present, e.g. ``("female", "male")``.
        counts: (S,) int64 number of training meshes of each sex.
        means: (S, K) float32 mean whitened coefficients.
        covariances: (S, K, K) float32 covariance of the whitened coefficients (ddof=1).
    """

    sexes: tuple[str, ...]
    counts: np.ndarray
    means: np.ndarray
    covariances: np.ndarray

    def __post_init__(self):
        object.__setattr__(self, "sexes", tuple(str(s) for s in self.sexes))
        object.__setattr__(self, "counts", _frozen(self.counts, np.int64, 1, "sex counts"))
        object.__setattr__(self, "means", _frozen(self.means, np.float32, 2, "sex means"))
        object.__setattr__(
            self, "covariances", _frozen(self.covariances, np.float32, 3, "sex covariances")
        )
        s, k = self.means.shape
        if len(self.sexes) != s or self.counts.shape != (s,) or self.covariances.shape != (s, k, k):
            raise ValueError("inconsistent per-sex statistics shapes")
        if not set(self.sexes) <= set(SEXES) or len(set(self.sexes)) != s or s == 0:
            raise ValueError(
                f"per-sex statistics need distinct sexes among {SEXES}, got {self.sexes}"
            )


@dataclass(frozen=True, eq=False)
class MixtureParams:
    """A Gaussian mixture over the *whitened* coefficients (fitted with scikit-learn).

    Attributes:
        weights: (M,) float32, sum 1.
        means: (M, K) float32.
        covariances: (M, K, K) float32 full covariances.
    """

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray

    def __post_init__(self):
        object.__setattr__(self, "weights", _frozen(self.weights, np.float32, 1, "gmm weights"))
        object.__setattr__(self, "means", _frozen(self.means, np.float32, 2, "gmm means"))
        object.__setattr__(
            self, "covariances", _frozen(self.covariances, np.float32, 3, "gmm covariances")
        )
        m, k = self.means.shape
        if m == 0 or self.weights.shape != (m,) or self.covariances.shape != (m, k, k):
            raise ValueError("inconsistent mixture parameter shapes")


@dataclass(frozen=True, eq=False)
class SampledShapes:
    """Bodies drawn from a :class:`ShapeModel`.

    Attributes:
        coeffs: (n, K) float32 raw coefficients, meters.
        vertices: (n, V, 3) float32 meshes, meters (in the model's aligned frame).
        sex: per-sample sex labels for ``method="per-sex"``, else None.
    """

    coeffs: np.ndarray
    vertices: np.ndarray
    sex: tuple[str, ...] | None


def _sqrt_psd(cov: np.ndarray) -> np.ndarray:
    """(..., K, K) symmetric PSD -> L with L @ L.T == cov (eigendecomposition, float64)."""
    cov = np.asarray(cov, dtype=np.float64)
    cov = 0.5 * (cov + np.swapaxes(cov, -1, -2))
    evals, evecs = np.linalg.eigh(cov)
    return evecs * np.sqrt(np.clip(evals, 0.0, None))[..., None, :]


def _draw_gaussians(
    which: np.ndarray, means: np.ndarray, covariances: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """One draw per entry of ``which`` (n,) from Gaussian ``which[i]`` of ``means`` (G, K) and
    ``covariances`` (G, K, K): (n, K) float64."""
    z = rng.standard_normal((len(which), means.shape[1]))
    roots = _sqrt_psd(covariances)
    out = np.empty_like(z)
    for g in range(len(means)):
        rows = which == g
        out[rows] = means[g].astype(np.float64) + z[rows] @ roots[g].T
    return out


def _check_sex_labels(sexes: Sequence[str | None] | None, n: int) -> list[str | None] | None:
    """Validate per-mesh sex labels ("female", "male" or None) for ``n`` meshes."""
    if sexes is None:
        return None
    sex_labels = list(sexes)
    if len(sex_labels) != n:
        raise ValueError(f"sexes has {len(sex_labels)} entries for {n} meshes")
    bad = {s for s in sex_labels if s is not None and s not in SEXES}
    if bad:
        raise ValueError(f"unknown sex labels {sorted(map(str, bad))}; use {SEXES} or None")
    return sex_labels


def _fit_sex_stats(whitened: np.ndarray, sex_labels: Sequence[str | None]) -> SexStats | None:
    """Per-sex Gaussians of whitened coefficients (N, K); None if no sex has 2+ meshes."""
    k = whitened.shape[1]
    present, counts, means, covs = [], [], [], []
    for sex in SEXES:
        mask = np.array([s == sex for s in sex_labels])
        count = int(mask.sum())
        if count == 0:
            continue
        if count < 2:
            logger.warning("only %d %s mesh: no per-sex statistics for it", count, sex)
            continue
        if count <= k:
            logger.warning("%d %s meshes for %d components: singular covariance", count, sex, k)
        present.append(sex)
        counts.append(count)
        means.append(whitened[mask].mean(axis=0))
        covs.append(np.cov(whitened[mask], rowvar=False, ddof=1).reshape(k, k))
    if not present:
        return None
    return SexStats(tuple(present), np.array(counts), np.array(means), np.array(covs))


def _fit_mixture(
    whitened: np.ndarray, n_mixture: int, rng: np.random.Generator
) -> MixtureParams:
    """Full-covariance Gaussian mixture (scikit-learn) of whitened coefficients (N, K)."""
    from bodyshape.extras import require_extra

    GaussianMixture = require_extra("sklearn.mixture").GaussianMixture  # noqa: N806
    threadpool_limits = require_extra("threadpoolctl").threadpool_limits

    gmm = GaussianMixture(
        n_components=n_mixture,
        covariance_type="full",
        random_state=int(rng.integers(0, 2**31 - 1)),
    )
    with threadpool_limits(1, user_api="blas"):  # small matrices: threads only cost
        gmm.fit(whitened)
    if not gmm.converged_:
        logger.warning("the Gaussian mixture did not converge")
    return MixtureParams(gmm.weights_ / gmm.weights_.sum(), gmm.means_, gmm.covariances_)


def _draw_whitened(
    method: str,
    n: int,
    k: int,
    rng: np.random.Generator,
    sex: str | None,
    stats: SexStats | None,
    mixture: MixtureParams | None,
) -> tuple[np.ndarray, tuple[str, ...] | None]:
    """``n`` whitened coefficient vectors (n, k) float64 drawn with ``method``, and the
    per-sample sex labels (``"per-sex"`` only, else None). See :meth:`ShapeModel.sample`."""
    if method == "gaussian":
        return rng.standard_normal((n, k)), None
    if method == "per-sex":
        if stats is None:
            raise ValueError("this model has no per-sex statistics (fit with sexes=...)")
        if sex is None:
            p = stats.counts / stats.counts.sum()
            which = rng.choice(len(stats.sexes), size=n, p=p)
        else:
            if sex not in stats.sexes:
                raise ValueError(f"no statistics for sex {sex!r}; the model has {stats.sexes}")
            which = np.full(n, stats.sexes.index(sex))
        whitened = _draw_gaussians(which, stats.means, stats.covariances, rng)
        return whitened, tuple(stats.sexes[i] for i in which)
    if mixture is None:
        raise ValueError("this model has no Gaussian mixture (fit with n_mixture > 0)")
    p = mixture.weights.astype(np.float64)
    which = rng.choice(len(p), size=n, p=p / p.sum())
    return _draw_gaussians(which, mixture.means, mixture.covariances, rng), None
