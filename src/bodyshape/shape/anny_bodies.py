"""Realistic anny bodies: phenotype sampling, local body changes, and meshes in any topology.

Phenotypes (gender, age, muscle, weight, height, proportions) follow anny's
``SimpleShapeDistribution`` (WHO-calibrated, conditioned on age and sex), but are drawn with an
explicit ``np.random.Generator`` from the same Beta distributions, because anny's own
``sample`` uses torch's global random state.

Real bodies vary in far more ways than six knobs, so each body also draws anny's *local
changes* (``local_changes="default"``): per-part fat, muscle and scale, and the ``measure-*``
girth and length targets. Left and right values are kept equal. Face details (eyes, nose,
mouth, ears, ...) are left at zero: they do not change a body silhouette and would waste PCA
components. See ``LocalChangeSpec`` for the documented ranges.

Meshes come out in anny's canonical frame: identity A-pose, meters, Z up, facing -Y, the
subject's left at +X, origin at anny's root bone.
"""

from __future__ import annotations

import fnmatch
import functools
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bodyshape.extras import require_extra

logger = logging.getLogger(__name__)

#: Topologies offered by ``bodyshape bodies`` (anny names). The first is the template.
TOPOLOGIES = ("anny-noeyes-notongue", "soma", "notoes", "notoes_collapse10pc")
PHENOTYPES = ("gender", "age", "muscle", "weight", "height", "proportions")


@dataclass(frozen=True)
class LocalChangeSpec:
    """Which anny local changes a body draws, and how much.

    Each selected change is drawn from a normal distribution N(0, std) clipped to
    [-limit, limit] (anny's range is [-1, 1]). Rules are ``(glob pattern, std, limit)`` on the
    label with any ``l-``/``r-`` prefix removed; the first matching rule wins and a label that
    matches no rule stays at 0. The defaults were checked by eye (docs/bodies.png) to give
    plausible adults: a visible spread of bust, waist, hip and limb girths and lengths
    without caricatures.
    """

    rules: tuple[tuple[str, float, float], ...] = (
        ("head-scale-*", 0.12, 0.4),
        ("head-fat-incr", 0.15, 0.5),
        ("measure-*-circ-*", 0.35, 0.9),  # girth targets: neck, bust, waist, hips, thigh, ...
        ("measure-*", 0.30, 0.8),  # length targets: upper arm, nape-to-waist, legs, ...
        ("*-fat-*", 0.30, 0.8),
        ("*-muscle-*", 0.25, 0.7),
        ("stomach-pregnant-incr", 0.20, 0.6),
        ("stomach-tone-incr", 0.25, 0.7),
        ("buttocks-volume-incr", 0.30, 0.8),
        ("breast-*", 0.25, 0.7),
        ("torso-scale-*", 0.20, 0.6),
        ("torso-vshape-incr", 0.25, 0.7),
        ("hip-scale-*", 0.20, 0.6),
        ("hip-waist-up", 0.20, 0.6),
        ("*arm-scale-*", 0.20, 0.6),
        ("*leg-scale-*", 0.20, 0.6),
        ("upperlegs-height-incr", 0.20, 0.6),
        ("lowerlegs-height-incr", 0.20, 0.6),
        ("leg-valgus-incr", 0.15, 0.5),
        ("neck-scale-*", 0.20, 0.6),
        ("neck-double-incr", 0.20, 0.6),
        ("foot-scale-*", 0.15, 0.5),
        ("hand-scale-incr", 0.15, 0.5),
    )
    scale: float = 1.0  # multiplies every std and limit (0 disables local changes)

    def std_and_limit(self, label: str) -> tuple[float, float]:
        """(std, limit) for an anny local-change label; (0, 0) if it is not drawn."""
        base = label[2:] if label[:2] in ("l-", "r-") else label
        for pattern, std, limit in self.rules:
            if fnmatch.fnmatchcase(base, pattern):
                return std * self.scale, min(1.0, limit * self.scale)
        return 0.0, 0.0


@dataclass(frozen=True)
class BodyParams:
    """Parameters of a batch of anny bodies.

    Attributes:
        phenotypes: (B, 6) float64, anny phenotype values in [0, 1], columns ``PHENOTYPES``.
        local_changes: (B, C) float64 in [-1, 1], columns ``local_change_labels``.
        local_change_labels: anny's local-change labels, in anny's order.
        sex: per body, "male" or "female" (anny gender <= 0.5 is male).
        morphological_age: (B,) years, the age used to condition the phenotype draw.
    """

    phenotypes: np.ndarray
    local_changes: np.ndarray
    local_change_labels: tuple[str, ...]
    sex: tuple[str, ...]
    morphological_age: np.ndarray

    def __len__(self) -> int:
        return len(self.sex)

    def record(self, i: int) -> dict:
        """JSON-able description of body ``i`` (non-zero local changes only)."""
        return {
            "phenotypes": {k: round(float(v), 6) for k, v in zip(PHENOTYPES, self.phenotypes[i])},
            "local_changes": {
                k: round(float(v), 6)
                for k, v in zip(self.local_change_labels, self.local_changes[i])
                if v != 0.0
            },
            "sex": self.sex[i],
            "morphological_age": round(float(self.morphological_age[i]), 3),
        }


def configure_anny_cache() -> None:
    """Point anny's cache to ``$ANNY_CACHE_DIR`` or ``~/.cache/anny`` (anny's default)."""
    os.environ.setdefault("ANNY_CACHE_DIR", str(Path.home() / ".cache" / "anny"))


@functools.lru_cache(maxsize=4)
def anny_model(topology: str):
    """The anny model (float64, local changes on) for ``topology``; cached per process.

    The first build of each topology takes ~1-2 minutes and writes ~1 GB to the anny cache.
    """
    if topology not in TOPOLOGIES:
        raise ValueError(f"unknown topology {topology!r}; choose from {', '.join(TOPOLOGIES)}")
    configure_anny_cache()
    import torch

    anny = require_extra("anny")
    logger.info("building anny model for topology %s (first time: minutes)", topology)
    model = anny.Anny(topology=topology, local_changes="default").to(dtype=torch.float64)
    model.eval()
    return model


@functools.lru_cache(maxsize=1)
def _phenotype_distributions():
    """anny's WHO-calibrated conditional Beta distributions (boys, girls) and age mapping."""
    configure_anny_cache()
    import torch

    get_anny_root_dir = require_extra("anny.paths").get_anny_root_dir
    distributions = require_extra("anny.shape_distribution")
    ConditionalBetaDistribution = distributions.ConditionalBetaDistribution  # noqa: N806
    MorphologicalAgeMapping = distributions.MorphologicalAgeMapping  # noqa: N806

    root = Path(get_anny_root_dir()) / "data" / "shape_calibration"
    out = {}
    for sex, fname in (("male", "boys.pth"), ("female", "girls.pth")):
        state = torch.load(root / fname, weights_only=True, map_location="cpu")
        dists = {}
        for key in ("height", "weight", "muscle", "proportions"):
            d = ConditionalBetaDistribution()
            d.load_state_dict(state[f"conditional_{key}_distribution"])
            dists[key] = d.to(dtype=torch.float64)
        out[sex] = dists
        mapping = MorphologicalAgeMapping()
        mapping.load_state_dict(state["morphological_age_mapping"])
        out["age_mapping"] = mapping.to(dtype=torch.float64)
    return out


def sample_body_params(
    n: int,
    rng: np.random.Generator,
    ages: tuple[float, float] = (20.0, 70.0),
    sexes: tuple[str, ...] = ("male", "female"),
    local: LocalChangeSpec | None = LocalChangeSpec(),
) -> BodyParams:
    """Draw ``n`` realistic bodies.

    Args:
        n: number of bodies.
        rng: the only source of randomness.
        ages: morphological age range in years, drawn uniformly (anny's default is 0-90;
            ours is adults).
        sexes: sexes to draw from, uniformly.
        local: local-change distribution, or None for phenotypes only.
    """
    import torch

    bad = set(sexes) - {"male", "female"}
    if bad or not sexes:
        raise ValueError(f"sexes must be 'male' and/or 'female', got {sexes!r}")
    if not 0 <= ages[0] <= ages[1] <= 90:
        raise ValueError(f"ages must satisfy 0 <= min <= max <= 90, got {ages!r}")
    dists = _phenotype_distributions()
    morph_age = rng.uniform(ages[0], ages[1], size=n)
    sex = rng.choice(np.array(sexes), size=n)
    # Gender is continuous in anny (0 = male, 1 = female): draw within the sex's half so that
    # the recorded sex and the Beta distributions used agree, as SimpleShapeDistribution does.
    gender = np.where(sex == "male", rng.uniform(0.0, 0.5, n), rng.uniform(0.5, 1.0, n))
    with torch.no_grad():
        age = dists["age_mapping"].morphological_to_anny_age(torch.as_tensor(morph_age)).numpy()
    phen = {"gender": gender, "age": age}
    for key in ("muscle", "weight", "height", "proportions"):
        vals = np.empty(n)
        for s in ("male", "female"):
            m = sex == s
            if not m.any():
                continue
            with torch.no_grad():
                a, b = dists[s][key].get_distribution_params(torch.as_tensor(age[m]))
            vals[m] = rng.beta(a.numpy(), b.numpy())
        phen[key] = vals
    phenotypes = np.stack([phen[k] for k in PHENOTYPES], axis=1)

    labels = local_change_labels()
    local_values = np.zeros((n, len(labels)))
    if local is not None:
        # One draw per base name so that the l- and r- variants get the same value.
        bases = sorted({lab[2:] if lab[:2] in ("l-", "r-") else lab for lab in labels})
        draws = {}
        for base in bases:
            std, limit = local.std_and_limit(base)
            draws[base] = (
                np.clip(rng.normal(0.0, std, n), -limit, limit) if std > 0 else np.zeros(n)
            )
        for j, lab in enumerate(labels):
            local_values[:, j] = draws[lab[2:] if lab[:2] in ("l-", "r-") else lab]
    return BodyParams(phenotypes, local_values, labels, tuple(sex.tolist()), morph_age)


@functools.lru_cache(maxsize=1)
def local_change_labels() -> tuple[str, ...]:
    """anny's local-change labels (``local_changes="default"``), identical for all topologies."""
    return tuple(anny_model(TOPOLOGIES[0]).local_change_labels)


@dataclass(frozen=True)
class BodyMeshes:
    """Meshes of a batch of bodies in one topology.

    Attributes:
        vertices: (B, V, 3) float64 meters, canonical A-pose.
        faces: (F, 3) int64.
        topology: anny topology name.
        stature: (B,) meters, top of head to soles (Z extent).
    """

    vertices: np.ndarray
    faces: np.ndarray
    topology: str
    stature: np.ndarray = field(repr=False)


def body_meshes(params: BodyParams, topology: str = TOPOLOGIES[0], batch_size: int = 64,
                progress: bool = False) -> BodyMeshes:
    """Meshes of ``params`` in ``topology`` (anny's identity A-pose)."""
    import torch
    from tqdm import tqdm

    model = anny_model(topology)
    out = []
    starts = range(0, len(params), batch_size)
    for s in tqdm(starts, desc=f"anny {topology}", unit="batch", disable=not progress):
        phen = torch.as_tensor(params.phenotypes[s : s + batch_size])
        loc = torch.as_tensor(params.local_changes[s : s + batch_size])
        with torch.no_grad():
            res = model(
                phenotype_kwargs={k: phen[:, i] for i, k in enumerate(PHENOTYPES)},
                local_changes_kwargs=loc,
            )
        out.append(res["vertices"].numpy())
    vertices = np.concatenate(out) if out else np.zeros((0, model.template_vertices.shape[0], 3))
    faces = model.faces.numpy().astype(np.int64)
    stature = vertices[..., 2].max(axis=1) - vertices[..., 2].min(axis=1)
    return BodyMeshes(vertices, faces, topology, stature)


@dataclass(frozen=True)
class SurfacePoints:
    """Points fixed on a mesh's surface: face ``face`` (P,) and barycentric ``bary`` (P, 3)."""

    face: np.ndarray
    bary: np.ndarray

    def locate(self, vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
        """Positions (..., P, 3) on meshes (..., V, 3) of the topology these points live on."""
        tri = faces[self.face]  # (P, 3)
        return np.einsum("pc,...pcd->...pd", self.bary, vertices[..., tri, :])


@functools.lru_cache(maxsize=8)
def template_points_on(topology: str, template_vertex_ids: tuple[int, ...]) -> SurfacePoints:
    """Where template vertices lie on another anny topology's surface.

    anny's topologies are retopologies of one surface, so the same body in two topologies
    is the same surface up to discretization. Computed on the mean body (all phenotypes 0.5,
    no local changes) as the closest surface point of each template vertex, then reused for
    any body: this is how landmarks transfer exactly between anny sources.
    """
    import trimesh

    mean = BodyParams(np.full((1, len(PHENOTYPES)), 0.5), np.zeros((1, len(local_change_labels()))),
                      local_change_labels(), ("female",), np.zeros(1))
    src = body_meshes(mean, TOPOLOGIES[0])
    dst = body_meshes(mean, topology)
    mesh = trimesh.Trimesh(dst.vertices[0], dst.faces, process=False)
    pts = src.vertices[0][list(template_vertex_ids)]
    closest, _, face = trimesh.proximity.closest_point(mesh, pts)
    bary = trimesh.triangles.points_to_barycentric(mesh.triangles[face], closest)
    return SurfacePoints(face.astype(np.int64), bary)
