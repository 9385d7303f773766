"""Registration of a scan in any standing pose, and quality figures that catch failures.

``register_scan`` runs, per mesh:

1. a pose-aware coarse fit (a ``CoarseFitter``; the one ``bodyshape register`` uses is
   :class:`bodyshape.body.posed_fit.PosedFitter`) over candidate orientations of the scan
   (``mesh_frame.candidate_rotations``), the best chosen by its two-sided residual;
2. the posed shape-prior fit (``fitter.fit_surface``): pose, similarity and every PCA
   coefficient fitted to closest points of the scan (and the given landmarks), the posed
   counterpart of the A-pose path's prior fit, so that the non-rigid stage starts from a
   body whose vertices already sit at the right anatomical places;
3. landmarks: the given ones (file or anny transfer), else that body's landmark vertices
   snapped to the scan (those more than ``max_snap`` off the surface left out);
4. non-rigid ICP (:func:`bodyshape.shape.register.register`) starting from that body, then
   once more from the landmarks of that first registration;
5. the canonical body: the registration unposed to the canonical A-pose by the fitter;
6. quality in both directions (:func:`registration_quality`).

This module knows nothing of skeletons: the fitter does the posing and unposing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from bodyshape.shape.register import RegistrationConfig, SurfaceSampler, register
from bodyshape.shape.template import Template

# A registration is ``failed`` when the 95th percentile of either direction's distance
# exceeds FAIL_P95_MM, and carries a ``warning`` above WARN_P95_MM (distances to dense
# surface samples, so a perfect fit still shows ~1-2 mm). Calibrated on the benchmark
# (docs/BENCHMARKS.md, "Registration of posed scans"): registrations within a few mm of the
# truth stay below WARN, and a missing forearm or a limb folded into the torso exceeds FAIL.
FAIL_P95_MM = 15.0
WARN_P95_MM = 6.0


class CoarseFit(Protocol):
    """What a coarse fitter returns: ``vertices`` (V, 3) the template-topology body in the
    scan's frame, meters; ``residual`` its two-sided distance (m); ``candidate`` the chosen
    orientation's index and ``candidate_residuals`` each orientation's best residual (m);
    ``summary`` a JSON-ready description (the fitted pose, scale) for registration.json."""

    vertices: np.ndarray
    summary: dict
    residual: float
    candidate: int
    candidate_residuals: tuple[float, ...]


class CoarseFitter(Protocol):
    """A body model fitted to scans in any pose (see :mod:`bodyshape.body.posed_fit`)."""

    def fit(self, points: np.ndarray, candidates: np.ndarray,
            landmarks: Mapping[str, np.ndarray] | None,
            rng: np.random.Generator) -> CoarseFit: ...

    def fit_surface(self, fit: CoarseFit, query: Callable[[np.ndarray], tuple],
                    landmarks: Mapping[str, np.ndarray] | None) -> CoarseFit: ...

    def to_canonical(self, fit: CoarseFit, vertices: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class RegistrationQuality:
    """How well a registration covers the scan, both ways (millimeters).

    Attributes:
        template_to_scan_mean_mm, template_to_scan_p95_mm: registered vertices -> the scan
            surface (a template that sits on only half the scan still scores well here).
        scan_to_template_mean_mm, scan_to_template_p95_mm: scan surface points -> the
            registered surface (coverage: a missing forearm shows here).
        failed: either p95 above ``FAIL_P95_MM``.
        warning: either p95 above ``WARN_P95_MM`` (and not failed), or None.
    """

    template_to_scan_mean_mm: float
    template_to_scan_p95_mm: float
    scan_to_template_mean_mm: float
    scan_to_template_p95_mm: float
    failed: bool
    warning: str | None

    def as_dict(self) -> dict:
        return {k: (round(v, 3) if isinstance(v, float) else v)
                for k, v in self.__dict__.items()}


def registration_quality(vertices: np.ndarray, faces: np.ndarray,
                         target: SurfaceSampler) -> RegistrationQuality:
    """Two-sided distances of a registration (V, 3) on ``faces`` and the scan ``target``."""
    there = target.query(vertices)[0] * 1e3
    back = SurfaceSampler.from_mesh(vertices, faces).query(target.points)[0] * 1e3
    p95 = (float(np.percentile(there, 95)), float(np.percentile(back, 95)))
    worst = max(p95)
    failed = worst > FAIL_P95_MM
    warning = None
    if not failed and worst > WARN_P95_MM:
        warning = (f"p95 distance {worst:.1f} mm above {WARN_P95_MM:g} mm: check the overlay "
                   "of NAME.ply on the scan")
    return RegistrationQuality(float(there.mean()), p95[0], float(back.mean()), p95[1],
                               failed, warning)


@dataclass(frozen=True, eq=False)
class ScanRegistration:
    """A scan registered onto the template topology.

    Attributes:
        vertices: (V, 3) the template topology in the scan's pose and frame, meters.
        canonical: (V, 3) the same body unposed to the canonical A-pose (Z up, facing -Y).
        coarse: the coarse fit it started from (after the posed shape-prior fit).
        landmarks: "given" or "estimated".
        n_landmarks: landmarks used by the first registration.
        quality: two-sided distances and the failed flag.
        seconds: wall time.
    """

    vertices: np.ndarray
    canonical: np.ndarray
    coarse: CoarseFit
    landmarks: str
    n_landmarks: int
    quality: RegistrationQuality
    seconds: float


def register_scan(vertices: np.ndarray, faces: np.ndarray, template: Template,
                  fitter: CoarseFitter, candidates: np.ndarray,
                  rng: np.random.Generator,
                  landmarks: Mapping[str, np.ndarray] | None = None,
                  config: RegistrationConfig = RegistrationConfig(),
                  max_snap: float = 0.01) -> ScanRegistration:
    """Register a scan in any standing pose (see the module doc).

    Args:
        vertices: (N, 3) scan vertices, meters, in any orientation that ``candidates`` covers.
        faces: (M, 3) scan triangles.
        template: the template.
        fitter: the pose-aware coarse fitter.
        candidates: (C, 3, 3) orientations to try (``mesh_frame.candidate_rotations``).
        rng: draws the coarse fit's point subsets.
        landmarks: name -> (3,) scan landmarks (meters, the scan's frame), or None.
        config: the non-rigid schedule.
        max_snap: estimated landmarks whose fitted vertex is farther than this (m) from the
            scan are left out.
    """
    t0 = time.perf_counter()
    vertices = np.asarray(vertices, np.float64)
    sampler = SurfaceSampler.from_mesh(vertices, np.asarray(faces), config.samples_per_face)
    given = dict(landmarks or {})
    use = given if len(given) >= 4 else None
    coarse = fitter.fit(sampler.points, candidates, use, rng)
    # Estimated landmarks come from the shape-prior fit, not the Chamfer fit: snapped from
    # a body ~5 mm off they were ~7 mm off themselves and pulled the registration astray.
    coarse = fitter.fit_surface(coarse, sampler.query, use)
    lm_vertices = dict(zip(template.landmark_names, template.landmark_indices))
    if use is not None:
        lms, source = given, "given"
    else:
        dist, pts, _ = sampler.query(coarse.vertices[template.landmark_indices])
        lms = {n: p for n, p, d in zip(template.landmark_names, pts, dist) if d < max_snap}
        source = "estimated"
    first = register(vertices, faces, lms, template, config=config, sampler=sampler,
                     init=coarse.vertices)
    x = first.vertices
    if source == "estimated":
        again = {n: x[i] for n, i in lm_vertices.items()}
        x = register(vertices, faces, again, template, config=config, sampler=sampler,
                     init=coarse.vertices).vertices
    canonical = fitter.to_canonical(coarse, x)
    quality = registration_quality(x, template.faces, sampler)
    return ScanRegistration(x, canonical, coarse, source, len(lms), quality,
                            time.perf_counter() - t0)
