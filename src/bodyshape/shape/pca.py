"""The PCA shape model: a linear space of body meshes in the template topology.

A mesh is ``mean + sum_k c_k * component_k`` where ``c`` are the (raw, unwhitened) coefficients
in meters and the components are orthonormal rows of length ``3V``. Before fitting, the
training meshes are rigidly aligned by generalized Procrustes analysis (rotation and
translation; optionally scale; see :mod:`bodyshape.shape.procrustes`) so that global position
and orientation do not use up components; :meth:`ShapeModel.align` applies the same alignment
to new meshes.

Shapes: ``B`` meshes, ``V`` vertices, ``K`` components, ``F`` faces. Coordinates in meters.

The model also stores what is needed to *sample* bodies ("gaussian", "per-sex" or "gmm"; see
:mod:`bodyshape.shape.sampling`).

Files are ``.npz`` archives of float32 arrays plus a JSON ``metadata`` entry, written
atomically; the format lives in :mod:`bodyshape.shape.pca_io`, the PCA solvers in
:mod:`bodyshape.shape.pca_solver`.

:class:`Alignment`, :func:`procrustes_align`, :class:`SexStats`, :class:`MixtureParams`,
:class:`SampledShapes`, :data:`SEXES` and :data:`SAMPLING_METHODS` live in those modules and
are re-exported here.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from bodyshape.fileio import sha256_arrays
from bodyshape.shape.pca_io import FORMAT_VERSION, read_model_file, write_model_file
from bodyshape.shape.pca_solver import _RANK_TOL, _fix_signs, _principal_axes

# Alignment, procrustes_align, SEXES, SAMPLING_METHODS, SexStats, MixtureParams and
# SampledShapes are part of this module's API (re-exported).
from bodyshape.shape.procrustes import (
    Alignment,
    _check_batch,
    _chunk_size,
    _generalized_procrustes,
    procrustes_align,
)
from bodyshape.shape.sampling import (
    SAMPLING_METHODS,
    SEXES,
    MixtureParams,
    SampledShapes,
    SexStats,
    _check_sex_labels,
    _draw_whitened,
    _fit_mixture,
    _fit_sex_stats,
    _frozen,
)

logger = logging.getLogger(__name__)

SPECTRUM_LENGTH = 200
"""How many leading variances :meth:`ShapeModel.fit` records (``cumulative_variance``)."""

# --------------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False, repr=False)
class ShapeModel:
    """A PCA shape model in the template topology.

    Attributes:
        mean: (V, 3) float32 mean mesh, meters.
        components: (K, 3V) float32 orthonormal rows (vertex-major: x0, y0, z0, x1, ...).
        std: (K,) float32 standard deviation (ddof=1) of the training coefficients, meters.
        explained_variance_ratio: (K,) float32 fraction of the total variance per component.
        cumulative_variance: (S,) float32, S >= K: cumulative explained variance ratio of the
            leading S principal directions of the training set (S = max(K, min(200, rank))),
            so that "components needed for 99 %" is known even beyond K.
        faces: (F, 3) int32.
        template_hash: hash of the template the meshes are registered to.
        landmark_names: the template's landmark names.
        sources: JSON-able summary of the training sources (counts, topologies, ...).
        n_training: number of training meshes.
        total_variance: total variance of the (aligned) training meshes, m^2 (sum over 3V).
        aligned: whether the training meshes were Procrustes-aligned before fitting.
        align_scale: whether that alignment included a scale.
        coeff_stats: per-sex Gaussians of the whitened coefficients, or None.
        mixture: Gaussian mixture over the whitened coefficients, or None.
    """

    mean: np.ndarray
    components: np.ndarray
    std: np.ndarray
    explained_variance_ratio: np.ndarray
    cumulative_variance: np.ndarray
    faces: np.ndarray
    template_hash: str
    landmark_names: tuple[str, ...] = ()
    sources: Mapping[str, Any] = field(default_factory=dict)
    n_training: int = 0
    total_variance: float = 0.0
    aligned: bool = True
    align_scale: bool = False
    coeff_stats: SexStats | None = None
    mixture: MixtureParams | None = None

    def __post_init__(self):
        set_ = functools.partial(object.__setattr__, self)
        set_("mean", _frozen(self.mean, np.float32, 2, "mean"))
        set_("components", _frozen(self.components, np.float32, 2, "components"))
        set_("std", _frozen(self.std, np.float32, 1, "std"))
        for name in ("explained_variance_ratio", "cumulative_variance"):
            set_(name, _frozen(getattr(self, name), np.float32, 1, name))
        set_("faces", _frozen(self.faces, np.int32, 2, "faces"))
        set_("template_hash", str(self.template_hash))
        set_("landmark_names", tuple(str(n) for n in self.landmark_names))
        try:
            set_("sources", json.loads(json.dumps(dict(self.sources))))  # a private copy
        except (TypeError, ValueError) as exc:
            raise ValueError(f"sources must be a JSON-able dict: {exc}") from exc
        set_("n_training", int(self.n_training))
        set_("total_variance", float(self.total_variance))
        set_("aligned", bool(self.aligned))
        set_("align_scale", bool(self.align_scale))
        v = self.mean.shape[0]
        k = self.components.shape[0]
        if self.mean.shape != (v, 3):
            raise ValueError(f"mean must be (V, 3), got {self.mean.shape}")
        if self.components.shape != (k, 3 * v) or k == 0:
            raise ValueError(f"components must be (K>0, {3 * v}), got {self.components.shape}")
        if self.std.shape != (k,) or self.explained_variance_ratio.shape != (k,):
            raise ValueError(f"std and explained_variance_ratio must be ({k},)")
        if not np.all(self.std > 0):
            raise ValueError("std must be positive")
        if self.cumulative_variance.shape[0] < k:
            raise ValueError(f"cumulative_variance must have at least {k} entries")
        faces = self.faces
        if faces.shape[1:] != (3,) or (faces.size and (faces.min() < 0 or faces.max() >= v)):
            raise ValueError("faces must be (F, 3) indices into the mean's vertices")
        for stats, what in ((self.coeff_stats, "coeff_stats"), (self.mixture, "mixture")):
            if stats is not None and stats.means.shape[1] != k:
                raise ValueError(f"{what} has {stats.means.shape[1]} dimensions, model has {k}")

    def __repr__(self) -> str:
        return (
            f"ShapeModel(hash={self.model_hash}, vertices={self.n_vertices}, "
            f"components={self.n_components}, n_training={self.n_training}, "
            f"template_hash={self.template_hash})"
        )

    # ---- basic properties ------------------------------------------------------------------

    @property
    def n_vertices(self) -> int:
        return self.mean.shape[0]

    @property
    def n_components(self) -> int:
        return self.components.shape[0]

    @functools.cached_property
    def model_hash(self) -> str:
        """First 16 hex digits of the SHA-256 of mean, components and std (float32)."""
        return sha256_arrays(self.mean, self.components, self.std)[:16]

    def components_for(self, fraction: float) -> int | None:
        """Fewest leading components explaining ``fraction`` of the training variance, or None
        if the recorded spectrum (``cumulative_variance``) does not reach it."""
        hits = np.nonzero(self.cumulative_variance >= fraction - 1e-7)[0]
        return int(hits[0]) + 1 if hits.size else None

    # ---- fitting -----------------------------------------------------------------------------

    @classmethod
    def fit(
        cls,
        vertices: np.ndarray,
        faces: np.ndarray,
        template_hash: str,
        landmark_names: Sequence[str] = (),
        n_components: int = 50,
        *,
        sexes: Sequence[str | None] | None = None,
        sources: Mapping[str, Any] | None = None,
        align: bool = True,
        align_scale: bool = False,
        n_mixture: int = 0,
        solver: str = "auto",
        rng: np.random.Generator | None = None,
    ) -> "ShapeModel":
        """Fit the model on registered meshes.

        Args:
            vertices: (N, V, 3) training meshes in the template topology, meters (float32
                preferred: one aligned float32 copy of N x 3V is made, ~1.1 GB for N = 7,000).
            faces: (F, 3) template faces.
            template_hash: hash of the template (:attr:`Template.hash`).
            landmark_names: the template's landmark names.
            n_components: K; reduced (with a warning) to the numerical rank of the data.
            sexes: per mesh "female", "male" or None (unknown); enables ``"per-sex"`` sampling.
            sources: JSON-able summary of where the meshes come from.
            align: Procrustes-align the meshes onto their mean first (generalized Procrustes).
            align_scale: include an isotropic scale in that alignment (removes body size!).
            n_mixture: number of Gaussian-mixture components for ``"gmm"`` sampling (0: none).
            solver: "exact" (eigendecomposition of the Gram/covariance matrix), "randomized"
                (randomized SVD, for large data) or "auto" (exact when min(N, 3V) <= 1000).
            rng: source of randomness (randomized SVD, mixture initialisation); defaults to
                ``np.random.default_rng(0)`` so that fitting is reproducible.
        """
        t0 = time.perf_counter()
        rng = np.random.default_rng(0) if rng is None else rng
        vertices = _check_batch(vertices)
        n, v, _ = vertices.shape
        if n < 2:
            raise ValueError(f"need at least 2 training meshes, got {n}")
        if n_components < 1:
            raise ValueError(f"n_components must be >= 1, got {n_components}")
        sex_labels = _check_sex_labels(sexes, n)
        if n_mixture < 0 or n_mixture > n:
            raise ValueError(f"n_mixture must be in [0, {n}], got {n_mixture}")
        try:
            sources = json.loads(json.dumps(dict(sources or {})))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"sources must be a JSON-able dict: {exc}") from exc

        # Aligned (or copied) float32 data, centered in place.
        if align:
            x = _generalized_procrustes(vertices, scale=align_scale)
        else:
            x = np.array(vertices.reshape(n, 3 * v), dtype=np.float32, order="C")
        t_align = time.perf_counter()
        mean = x.mean(axis=0, dtype=np.float64)
        mean32 = mean.astype(np.float32)
        total_ss = 0.0
        step = _chunk_size(v)
        for start in range(0, n, step):
            chunk = x[start : start + step]
            chunk -= mean32
            total_ss += float(np.einsum("ij,ij->i", chunk, chunk).sum(dtype=np.float64))
        total_variance = total_ss / (n - 1)
        if total_variance <= 0:
            raise ValueError("the training meshes are all identical (zero variance)")

        max_rank = min(n - 1, 3 * v)
        n_spectrum = min(max(SPECTRUM_LENGTH, n_components), max_rank)
        n_axes = min(n_components, max_rank)
        variances, axes = _principal_axes(x, n_spectrum, n_axes, solver, rng)
        rank = int(np.sum(variances > _RANK_TOL * total_variance))
        if rank < n_components:
            logger.warning(
                "n_components=%d reduced to %d (numerical rank of %d meshes)", n_components, rank, n
            )
        k = min(n_components, rank)
        if k == 0:
            raise ValueError("the training meshes have no usable variance")
        components = _fix_signs(axes[:k]).astype(np.float32)
        t_pca = time.perf_counter()

        coeffs = (x @ components.T).astype(np.float64)  # (N, K)
        del x
        std = coeffs.std(axis=0, ddof=1)
        whitened = coeffs / std
        ratio = variances / total_variance
        cumulative = np.cumsum(ratio)

        coeff_stats = _fit_sex_stats(whitened, sex_labels) if sex_labels is not None else None
        mixture = _fit_mixture(whitened, n_mixture, rng) if n_mixture > 0 else None

        model = cls(
            mean=mean.reshape(v, 3),
            components=components,
            std=std,
            explained_variance_ratio=ratio[:k],
            cumulative_variance=cumulative,
            faces=faces,
            template_hash=template_hash,
            landmark_names=tuple(landmark_names),
            sources=sources,
            n_training=n,
            total_variance=total_variance,
            aligned=align,
            align_scale=align_scale,
            coeff_stats=coeff_stats,
            mixture=mixture,
        )
        t_end = time.perf_counter()
        logger.info(
            "fitted %d components on %d meshes x %d vertices in %.1f s "
            "(alignment %.1f s, PCA %.1f s); %.1f%% variance explained",
            k, n, v, t_end - t0, t_align - t0, t_pca - t_align, 100 * cumulative[k - 1],
        )
        return model

    # ---- encoding ----------------------------------------------------------------------------

    def align(self, vertices: np.ndarray) -> Alignment:
        """Procrustes-align meshes (B, V, 3) onto the mean, as the fit aligned its data."""
        return procrustes_align(vertices, self.mean, scale=self.align_scale)

    def _check_k(self, n_components: int | None) -> int:
        k = self.n_components if n_components is None else int(n_components)
        if not 0 <= k <= self.n_components:
            raise ValueError(f"n_components must be in [0, {self.n_components}], got {k}")
        return k

    def encode(
        self, vertices: np.ndarray, n_components: int | None = None, *, align: bool = False
    ) -> np.ndarray:
        """Project meshes onto the components: (B, V, 3) -> (B, k) raw coefficients, meters.

        A pure linear projection; with ``align=True`` the meshes are first Procrustes-aligned
        onto the mean (:meth:`align`), which is what meshes in an arbitrary frame need.
        Float32 input gives float32 output, float64 gives float64.
        """
        vertices = _check_batch(vertices)
        if vertices.shape[1:] != self.mean.shape:
            raise ValueError(f"vertices must be (B, {self.n_vertices}, 3), got {vertices.shape}")
        if align:
            vertices = self.align(vertices).vertices
        k = self._check_k(n_components)
        dtype = np.result_type(vertices.dtype, np.float32)
        comps = self.components[:k].astype(dtype, copy=False)
        mean = self.mean.astype(dtype, copy=False)
        b = vertices.shape[0]
        out = np.empty((b, k), dtype=dtype)
        step = _chunk_size(self.n_vertices)
        for start in range(0, b, step):
            centered = vertices[start : start + step].astype(dtype) - mean
            out[start : start + step] = centered.reshape(centered.shape[0], -1) @ comps.T
        return out

    def decode(self, coeffs: np.ndarray) -> np.ndarray:
        """Meshes from coefficients: (B, k) -> (B, V, 3), meters, k <= K (missing ones are 0).

        Float32 coefficients give float32 meshes, float64 give float64.
        """
        coeffs = np.asarray(coeffs)
        if coeffs.ndim != 2:
            raise ValueError(f"coeffs must be (B, k), got shape {coeffs.shape}")
        k = self._check_k(coeffs.shape[1])
        dtype = np.result_type(coeffs.dtype, np.float32)
        flat = coeffs.astype(dtype, copy=False) @ self.components[:k].astype(dtype, copy=False)
        flat += self.mean.reshape(-1).astype(dtype, copy=False)
        return flat.reshape(coeffs.shape[0], self.n_vertices, 3)

    def whiten(self, coeffs: np.ndarray) -> np.ndarray:
        """Raw coefficients (..., k) -> unit-variance coefficients (divide by std[:k])."""
        coeffs = np.asarray(coeffs)
        return coeffs / self.std[: self._check_k(coeffs.shape[-1])]

    def unwhiten(self, whitened: np.ndarray) -> np.ndarray:
        """Unit-variance coefficients (..., k) -> raw coefficients, meters (times std[:k])."""
        whitened = np.asarray(whitened)
        return whitened * self.std[: self._check_k(whitened.shape[-1])]

    # ---- sampling ----------------------------------------------------------------------------

    def sample(
        self,
        n: int,
        rng: np.random.Generator,
        method: str = "gaussian",
        sex: str | None = None,
    ) -> SampledShapes:
        """Draw ``n`` bodies.

        Args:
            n: number of samples.
            rng: the only source of randomness.
            method: "gaussian" (independent N(0, std^2) per component), "per-sex" (full
                Gaussian per sex, sex drawn with the training proportions unless ``sex`` is
                given) or "gmm" (the Gaussian mixture fitted with ``n_mixture > 0``).
            sex: force "female" or "male" (``method="per-sex"`` only).
        """
        if method not in SAMPLING_METHODS:
            raise ValueError(f"method must be one of {SAMPLING_METHODS}, got {method!r}")
        if not isinstance(rng, np.random.Generator):
            raise TypeError("rng must be a numpy.random.Generator")
        if sex is not None and method != "per-sex":
            raise ValueError("sex can only be forced with method='per-sex'")
        whitened, labels = _draw_whitened(
            method, int(n), self.n_components, rng, sex, self.coeff_stats, self.mixture
        )
        coeffs = (whitened * self.std.astype(np.float64)).astype(np.float32)
        return SampledShapes(coeffs, self.decode(coeffs), labels)

    # ---- files -------------------------------------------------------------------------------

    def save(self, path: str | os.PathLike) -> None:
        """Write the model to an ``.npz`` file, atomically (format: :mod:`.pca_io`)."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        write_model_file(path, fields, self.model_hash)
        logger.info("saved shape model %s to %s", self.model_hash, Path(path))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ShapeModel":
        """Read a model written by :meth:`save` (ValueError naming the file if it cannot)."""
        path = Path(path)
        fields, recorded_hash = read_model_file(path)
        try:
            model = cls(**fields)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{path}: invalid shape model: {exc!r}") from exc
        if recorded_hash is not None and recorded_hash != model.model_hash:
            raise ValueError(f"{path}: model hash mismatch (file corrupted?)")
        return model

    # ---- reporting ---------------------------------------------------------------------------

    def summary(self) -> str:
        """Multi-line human-readable description."""
        k = self.n_components
        cum = self.cumulative_variance
        rms_mm = self.std.astype(np.float64) / np.sqrt(self.n_vertices) * 1000
        alignment = "none"
        if self.aligned:
            alignment = "rigid + scale" if self.align_scale else "rigid"
        lines = [
            f"PCA shape model {self.model_hash} (format {FORMAT_VERSION})",
            f"  template: {self.template_hash}, {self.n_vertices} vertices, "
            f"{len(self.faces)} faces, {len(self.landmark_names)} landmarks",
            f"  training meshes: {self.n_training}, alignment: {alignment}",
            f"  components: {k}, total variance {self.total_variance:.4g} m^2",
            # A coefficient is a projection on a unit vector over 3V coordinates: one std along
            # a component moves the vertices by std / sqrt(V) RMS (Euclidean, per vertex).
            f"  one std moves vertices by {rms_mm[0]:.1f} mm RMS (component 1) .. "
            f"{rms_mm[-1]:.2f} mm (component {k})",
        ]
        parts = [f"{n}: {100 * cum[n - 1]:.2f}%" for n in (10, 20, 50) if n <= len(cum)]
        lines.append("  explained variance at " + (", ".join(parts) if parts else "-")
                     + f"; with all {k} components: {100 * cum[k - 1]:.2f}%")
        for frac in (0.95, 0.99):
            needed = self.components_for(frac)
            text = str(needed) if needed is not None else f"more than {len(cum)}"
            lines.append(f"  components for {100 * frac:.0f}% of the variance: {text}")
        if self.coeff_stats is not None:
            stats = self.coeff_stats
            counts = ", ".join(f"{s} {c}" for s, c in zip(stats.sexes, stats.counts))
            lines.append(f"  per-sex statistics: {counts}")
        if self.mixture is not None:
            lines.append(f"  Gaussian mixture: {len(self.mixture.weights)} components")
        lines.append(f"  sources: {json.dumps(self.sources, sort_keys=True)}")
        return "\n".join(lines)


def reconstruction_error(
    model: ShapeModel, vertices: np.ndarray, n_components: int | None = None
) -> np.ndarray:
    """Mean per-vertex Euclidean distance (meters) between meshes and their reconstruction.

    Args:
        model: the shape model.
        vertices: (B, V, 3) meshes, meters. They are Procrustes-aligned onto the mean first if
            the model's training data were (the error is measured in that aligned frame).
        n_components: use only the first n components (default all K).

    Returns:
        (B,) float64 mean vertex distance, meters.
    """
    vertices = _check_batch(vertices)
    out = np.empty(vertices.shape[0])
    step = _chunk_size(model.n_vertices)
    for start in range(0, vertices.shape[0], step):
        chunk = vertices[start : start + step]
        if model.aligned:
            chunk = model.align(chunk).vertices
        chunk = chunk.astype(np.float64)
        recon = model.decode(model.encode(chunk, n_components))
        out[start : start + step] = np.linalg.norm(recon - chunk, axis=2).mean(axis=1)
    return out
