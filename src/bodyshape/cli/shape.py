"""Shape-stage commands: ``bodies``, ``register``, ``pca fit|sample|summary``,
``build-shape-model``.

Each parses its options, calls one function of ``bodyshape.shape`` (imported when the
command runs) and reports.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from bodyshape.assets import DEFAULT_SHAPE_MODEL
from bodyshape.cli.common import default_of, fail, parse_range

FOLDERS = "bodyshape.shape.folders"
BUILD = "bodyshape.shape.build"
SAMPLING = click.Choice(["gaussian", "per-sex", "gmm"])


@click.command()
@click.option("--n", "n", type=click.IntRange(1), required=True, help="Number of bodies.")
@click.option("--topology", default="anny-noeyes-notongue", show_default=True,
              type=click.Choice(["anny-noeyes-notongue", "soma", "notoes", "notoes_collapse10pc"]),
              help="anny mesh topology of the output.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Output folder.")
@click.option("--ages", default="20-70", show_default=True,
              help="Morphological age range in years (anny's full range is 0-90).")
@click.option("--sex", type=click.Choice(["both", "male", "female"]), default="both",
              show_default=True, help="Sex of the bodies (both: drawn uniformly).")
@click.option("--local-scale", type=click.FloatRange(0, 3),
              default=default_of(f"{FOLDERS}:write_anny_bodies", "local_scale"),
              show_default=True, help="Scale of the local body changes (0: phenotypes only).")
def bodies(n, topology, seed, out, ages, sex, local_scale):
    """Write N realistic anny bodies as PLY files plus DIR/bodies.json."""
    from bodyshape.shape.folders import write_anny_bodies

    sexes = ("male", "female") if sex == "both" else (sex,)
    try:
        path = write_anny_bodies(out, n, topology, seed, ages=parse_range(ages), sexes=sexes,
                                 local_scale=local_scale)
    except ValueError as e:
        fail(str(e))
    click.echo(f"wrote {n} bodies and {path}")


@click.command()
@click.argument("in_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Output folder of the registered meshes.")
@click.option("--shape-model", default="default", show_default=True,
              help="Shape prior for the fit: a model .npz, 'default' (the shipped model) "
                   "or 'none' (template only; the meshes must then stand in an A-pose).")
@click.option("--units", type=click.Choice(["auto", "m", "cm", "mm"]),
              default=default_of(f"{FOLDERS}:RegisterOptions", "units"), show_default=True,
              help="Length unit of the input meshes.")
@click.option("--up", type=str, default=default_of(f"{FOLDERS}:RegisterOptions", "up"),
              show_default=True, help="Up axis of the input: auto, x, y, z, -x, -y, -z.")
@click.option("--landmarks", type=click.Choice(["auto", "estimate"]),
              default=default_of(f"{FOLDERS}:RegisterOptions", "landmarks"),
              show_default=True, help="auto: landmark file, else anny transfer, else "
              "estimated; estimate: always estimate.")
@click.option("--workers", type=click.IntRange(1),
              default=default_of(f"{FOLDERS}:register_folder", "workers"), show_default=True,
              help="Processes.")
def register(in_dir, out, shape_model, units, up, landmarks, workers):
    """Register every mesh in IN_DIR onto the template topology (resumable).

    Writes OUT/NAME.ply (the template topology in the scan's pose and axes, meters),
    OUT/NAME.canonical.ply (unposed to the canonical A-pose; what `pca fit` reads) and
    OUT/NAME.registration.json. Exits 1 if any mesh could not be registered or failed its
    quality check.
    """
    from bodyshape.shape.folders import RegisterOptions, register_folder

    model = _model_path(shape_model)
    fitter = None
    if model is not None:
        from bodyshape.body import BodyModel
        from bodyshape.body.posed_fit import PosedFitter

        try:
            fitter = PosedFitter(BodyModel.load(model))
        except ValueError as e:
            fail(f"{model}: {e}")
    else:
        click.echo("warning: without a shape model, meshes must stand in an A-pose (the "
                   "pose-aware fit needs one)", err=True)
    try:
        opts = RegisterOptions(units=units, up=up, landmarks=landmarks, shape_model=model,
                               fitter=fitter)
        report = register_folder(in_dir, out, opts, workers=workers)
    except ValueError as e:
        fail(str(e))
    for msg in report.failed.values():
        click.echo(f"failed: {msg}", err=True)
    for msg in report.flagged.values():
        click.echo(f"failed: {msg}", err=True)
    click.echo(f"registered {len(report.done)}, skipped {len(report.skipped)} (already done), "
               f"failed {len(report.failed)}, failed the quality check {len(report.flagged)} "
               f"-> {out}")
    if report.failed or report.flagged:
        sys.exit(1)


def _model_path(value: str) -> str | None:
    """``--shape-model`` of ``register``: a path, 'default' or 'none' -> a path or None."""
    if value == "none":
        return None
    if value == "default":
        if DEFAULT_SHAPE_MODEL.exists():
            return str(DEFAULT_SHAPE_MODEL)
        click.echo("warning: no shipped shape model; registering without a shape prior",
                   err=True)
        return None
    if not Path(value).exists():
        fail(f"{value}: no such shape model")
    return value


@click.group()
def pca():
    """Fit, sample and inspect PCA shape models."""


@pca.command("fit")
@click.argument("dirs", nargs=-1, required=True,
                type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--components", type=click.IntRange(1),
              default=default_of(f"{BUILD}:fit_shape_model", "n_components"),
              show_default=True, help="Number of principal components.")
@click.option("--mixture", type=click.IntRange(0),
              default=default_of(f"{BUILD}:fit_shape_model", "n_mixture"), show_default=True,
              help="Gaussian-mixture components fitted for 'gmm' sampling (0: none).")
@click.option("--seed", type=int, default=default_of(f"{BUILD}:fit_shape_model", "seed"),
              show_default=True, help="Random seed (mixture fit).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Output model (.npz).")
@click.option("--force", is_flag=True,
              help="Include registrations flagged failed in their registration.json "
                   "(refused by default).")
def pca_fit(dirs, components, mixture, seed, out, force):
    """Fit a PCA shape model on registered meshes in DIRS (template topology; registered
    folders give their NAME.canonical.ply)."""
    from bodyshape.shape.build import fit_shape_model

    try:
        model = fit_shape_model(dirs, components, n_mixture=mixture, seed=seed,
                                failed="include" if force else "refuse")
    except ValueError as e:
        fail(str(e))
    model.save(out)
    click.echo(model.summary())
    click.echo(f"saved {out}")


@pca.command("sample")
@click.argument("model", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--n", "n", type=click.IntRange(1), required=True, help="Number of bodies.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option("--method", type=SAMPLING, default="gaussian", show_default=True,
              help="gaussian: independent components; per-sex: a full Gaussian per sex; gmm: "
              "the fitted mixture (see pca fit --mixture).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Output folder.")
def pca_sample(model, n, seed, method, out):
    """Draw N new bodies from a shape model and write them as PLY files."""
    from bodyshape.shape.build import write_samples

    try:
        write_samples(model, n, seed, method, out)
    except ValueError as e:
        fail(str(e))
    click.echo(f"wrote {n} bodies to {out}")


@pca.command("summary")
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path), default=None,
                required=False)
def pca_summary(model):
    """Print a summary of MODEL (default: the shipped model)."""
    from bodyshape.shape.pca import ShapeModel

    path = model or DEFAULT_SHAPE_MODEL
    try:
        click.echo(ShapeModel.load(path).summary())
    except ValueError as e:
        fail(str(e))


@click.command("build-shape-model")
@click.option("--preset", type=click.Choice(["default", "quick"]), default="default",
              show_default=True, help="default: 3,000 + 4,000 bodies (about an hour on 2 "
              "cores); quick: a few hundred bodies in minutes.")
@click.option("--work", type=click.Path(file_okay=False, path_type=Path),
              default=Path("work/shape"), show_default=True,
              help="Folder for the intermediate bodies (resumable).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Output model [default: WORK/shape_model.npz]. The shipped model is "
              "written over only with --force.")
@click.option("--force", is_flag=True,
              help="Allow --out to be the packaged model (src/bodyshape/data/"
              "shape_model.npz); the shipped network was trained for the current one.")
@click.option("--workers", type=click.IntRange(1), default=default_of(f"{BUILD}:build", "workers"),
              show_default=True, help="Processes.")
def build_shape_model(preset, work, out, force, workers):
    """Build a shape model from anny bodies end to end and print its summary."""
    from bodyshape.shape.build import PRESETS, build

    out = out or work / "shape_model.npz"
    if out.resolve() == DEFAULT_SHAPE_MODEL.resolve() and not force:
        fail(f"{out} is the packaged shape model; the shipped network was trained for it. "
             "Give another --out, or --force to replace it")
    model = build(PRESETS[preset], work, out, workers=workers)
    click.echo(model.summary())
    click.echo(f"saved {out}")


COMMANDS = (bodies, register, pca, build_shape_model)
