"""Building shape models: fit from folders, sample to folders, and the default build.

The default model (``bodyshape build-shape-model``) is made of:

- dataset A: 3,000 anny bodies generated directly in the template topology;
- dataset B: 2,000 ``soma`` + 2,000 ``notoes`` anny bodies, registered onto the template with
  a shape prior fitted on dataset A (and landmarks transferred from anny's correspondence);
- one PCA over A + B (50 components, plus an 8-component Gaussian mixture for sampling).

Every step writes into a work folder and skips what already exists, so a killed build resumes.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bodyshape.fileio import write_json
from bodyshape.shape.folders import (
    RegisterOptions,
    read_template_meshes,
    register_folder,
    write_anny_bodies,
)
from bodyshape.shape.meshio import save_body_mesh
from bodyshape.shape.pca import ShapeModel
from bodyshape.shape.template import TEMPLATE_TOPOLOGY, load_template

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuildSpec:
    """What a shape-model build generates. ``registered`` lists (topology, n, seed)."""

    n_template: int = 3000
    seed_template: int = 1
    registered: tuple[tuple[str, int, int], ...] = (("soma", 2000, 2), ("notoes", 2000, 3))
    components: int = 50
    n_mixture: int = 8
    seed: int = 0


PRESETS = {
    "default": BuildSpec(),
    "quick": BuildSpec(n_template=300, registered=(("notoes", 60, 3),), n_mixture=4),
}


def fit_shape_model(dirs, n_components: int = 50, n_mixture: int = 8, seed: int = 0,
                    progress: bool = True, failed: str = "refuse") -> ShapeModel:
    """Fit a PCA shape model on the template-topology meshes in ``dirs`` (registered
    folders give their canonical meshes; ``failed``: what to do with registrations flagged
    failed, "refuse", "skip" or "include", see ``read_template_meshes``)."""
    template = load_template()
    meshes = read_template_meshes(dirs, template, progress=progress, failed=failed)
    if len(meshes.vertices) <= n_components:
        raise ValueError(f"{len(meshes.vertices)} meshes cannot support {n_components} "
                         "components: give more meshes or fewer components")
    logger.info("fitting PCA on %d meshes", len(meshes.vertices))
    sexes = meshes.sex if any(s is not None for s in meshes.sex) else None
    return ShapeModel.fit(meshes.vertices, template.faces, template.hash, template.landmark_names,
                          n_components, sexes=sexes, sources=meshes.sources,
                          n_mixture=n_mixture, rng=np.random.default_rng(seed))


def write_samples(model_path: str | os.PathLike, n: int, seed: int, method: str,
                  out: str | os.PathLike) -> None:
    """Draw ``n`` bodies from a model into ``out/sample_#####.ply`` plus ``bodies.json``."""
    model = ShapeModel.load(model_path)
    draw = model.sample(n, np.random.default_rng(seed), method=method)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    records = {}
    for i, v in enumerate(draw.vertices):
        name = f"sample_{i:05d}"
        save_body_mesh(out / f"{name}.ply", v, model.faces)
        records[name] = {"sex": draw.sex[i] if draw.sex else None,
                         "stature_m": round(float(np.ptp(v[:, 2])), 5)}
    write_json(out / "bodies.json", {"source": f"pca sample ({method}, seed {seed})",
                                     "topology": "template", "model_hash": model.model_hash,
                                     "bodies": records})


def build(spec: BuildSpec, work: str | os.PathLike, out: str | os.PathLike,
          workers: int = 2) -> ShapeModel:
    """Run the whole build into ``work`` and save the model to ``out``."""
    work = Path(work)
    template_dir = work / "A_template"
    write_anny_bodies(template_dir, spec.n_template, TEMPLATE_TOPOLOGY, spec.seed_template)
    prior_path = work / "prior_A.npz"
    if not prior_path.exists():
        prior = fit_shape_model([template_dir], spec.components, n_mixture=0, seed=spec.seed)
        prior.save(prior_path)
    dirs = [template_dir]
    for topology, n, seed in spec.registered:
        src = work / f"B_{topology}"
        dst = work / f"B_{topology}_registered"
        write_anny_bodies(src, n, topology, seed)
        report = register_folder(src, dst, RegisterOptions(shape_model=str(prior_path)),
                                 workers=workers)
        if report.failed or report.flagged:
            logger.warning("%d meshes failed to register and %d were flagged failed in %s; "
                           "the model leaves them out", len(report.failed),
                           len(report.flagged), src)
        dirs.append(dst)
    model = fit_shape_model(dirs, spec.components, n_mixture=spec.n_mixture, seed=spec.seed,
                            failed="skip")
    model.save(out)
    return model
