"""The ``bodyshape`` command line: the only module that imports every stage.

Each command parses its options, calls one library function and reports; no logic lives here.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

DEFAULT_MODEL = Path(__file__).resolve().parent / "data" / "shape_model.npz"


def _range(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(x) for x in text.split("-"))
    except ValueError:
        raise click.BadParameter(f"expected MIN-MAX, got {text!r}") from None
    return lo, hi


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
@click.version_option(package_name="bodyshape")
def main(verbose: int) -> None:
    """bodyshape: 3D body shape and tape measurements from a front and a side photo."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


@main.command()
@click.option("--n", "n", type=click.IntRange(1), required=True, help="Number of bodies.")
@click.option("--topology", default="anny-noeyes-notongue", show_default=True,
              type=click.Choice(["anny-noeyes-notongue", "soma", "notoes", "notoes_collapse10pc"]),
              help="anny mesh topology of the output.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--ages", default="20-70", show_default=True,
              help="Morphological age range in years (anny's full range is 0-90).")
@click.option("--sex", type=click.Choice(["both", "male", "female"]), default="both",
              show_default=True)
@click.option("--local-scale", type=click.FloatRange(0, 3), default=1.0, show_default=True,
              help="Scale of the local body changes (0: phenotypes only).")
def bodies(n, topology, seed, out, ages, sex, local_scale):
    """Write N realistic anny bodies as PLY files plus DIR/bodies.json."""
    from bodyshape.shape.folders import write_anny_bodies

    sexes = ("male", "female") if sex == "both" else (sex,)
    try:
        path = write_anny_bodies(out, n, topology, seed, ages=_range(ages), sexes=sexes,
                                 local_scale=local_scale)
    except ValueError as e:
        _fail(str(e))
    click.echo(f"wrote {n} bodies and {path}")


@main.command()
@click.argument("in_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--shape-model", default="default", show_default=True,
              help="Shape prior for the fit: a model .npz, 'default' (the shipped model) "
                   "or 'none' (template only).")
@click.option("--units", type=click.Choice(["auto", "m", "cm", "mm"]), default="auto",
              show_default=True)
@click.option("--up", default="auto", show_default=True, help="Up axis of the input: auto, "
              "x, y, z, -x, -y, -z.")
@click.option("--landmarks", type=click.Choice(["auto", "estimate"]), default="auto",
              show_default=True, help="auto: landmark file, else anny transfer, else "
              "estimated; estimate: always estimate.")
@click.option("--workers", type=click.IntRange(1), default=1, show_default=True)
def register(in_dir, out, shape_model, units, up, landmarks, workers):
    """Register every mesh in IN_DIR onto the template topology (resumable)."""
    from bodyshape.shape.folders import RegisterOptions, register_folder

    model = _model_path(shape_model)
    opts = RegisterOptions(units=units, up=up, landmarks=landmarks, shape_model=model)
    try:
        report = register_folder(in_dir, out, opts, workers=workers)
    except ValueError as e:
        _fail(str(e))
    for msg in report.failed.values():
        click.echo(f"failed: {msg}", err=True)
    click.echo(f"registered {len(report.done)}, skipped {len(report.skipped)} (already done), "
               f"failed {len(report.failed)} -> {out}")
    if report.failed:
        sys.exit(1)


def _model_path(value: str) -> str | None:
    if value == "none":
        return None
    if value == "default":
        if DEFAULT_MODEL.exists():
            return str(DEFAULT_MODEL)
        click.echo("warning: no shipped shape model; registering without a shape prior",
                   err=True)
        return None
    if not Path(value).exists():
        _fail(f"{value}: no such shape model")
    return value


@main.group()
def pca():
    """Fit, sample and inspect PCA shape models."""


@pca.command("fit")
@click.argument("dirs", nargs=-1, required=True,
                type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--components", type=click.IntRange(1), default=50, show_default=True)
@click.option("--mixture", type=click.IntRange(0), default=8, show_default=True,
              help="Gaussian-mixture components fitted for 'gmm' sampling (0: none).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
def pca_fit(dirs, components, mixture, seed, out):
    """Fit a PCA shape model on registered meshes in DIRS (template topology)."""
    from bodyshape.shape.build import fit_shape_model

    try:
        model = fit_shape_model(dirs, components, n_mixture=mixture, seed=seed)
    except ValueError as e:
        _fail(str(e))
    model.save(out)
    click.echo(model.summary())
    click.echo(f"saved {out}")


@pca.command("sample")
@click.argument("model", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--n", "n", type=click.IntRange(1), required=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--method", type=click.Choice(["gaussian", "per-sex", "gmm"]),
              default="gaussian", show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
def pca_sample(model, n, seed, method, out):
    """Draw N new bodies from a shape model and write them as PLY files."""
    from bodyshape.shape.build import write_samples

    try:
        write_samples(model, n, seed, method, out)
    except ValueError as e:
        _fail(str(e))
    click.echo(f"wrote {n} bodies to {out}")


@pca.command("summary")
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path), default=None,
                required=False)
def pca_summary(model):
    """Print a summary of MODEL (default: the shipped model)."""
    from bodyshape.shape.pca import ShapeModel

    path = model or DEFAULT_MODEL
    try:
        click.echo(ShapeModel.load(path).summary())
    except ValueError as e:
        _fail(str(e))


@main.command("build-shape-model")
@click.option("--preset", type=click.Choice(["default", "quick"]), default="default",
              show_default=True, help="default: 3,000 + 4,000 bodies (about an hour on 2 "
              "cores); quick: a few hundred bodies in minutes.")
@click.option("--work", type=click.Path(file_okay=False, path_type=Path),
              default=Path("work/shape"), show_default=True,
              help="Folder for the intermediate bodies (resumable).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Output model [default: the shipped model for --preset default, "
                   "WORK/shape_model.npz otherwise].")
@click.option("--workers", type=click.IntRange(1), default=2, show_default=True)
def build_shape_model(preset, work, out, workers):
    """Build a shape model from anny bodies end to end and print its summary."""
    from bodyshape.shape.build import PRESETS, build

    spec = PRESETS[preset]
    out = out or (DEFAULT_MODEL if preset == "default" else work / "shape_model.npz")
    model = build(spec, work, out, workers=workers)
    click.echo(model.summary())
    click.echo(f"saved {out}")


@main.command()
@click.option("--shape-model", type=click.Path(dir_okay=False, path_type=Path),
              default=DEFAULT_MODEL, show_default=True, help="PCA shape model (.npz).")
@click.option("--n", "n", type=click.IntRange(1), required=True,
              help="Number of front/side pairs (all parts together).")
@click.option("--poses-per-shape", type=click.IntRange(1), default=1, show_default=True,
              help="Pose/camera variants per body shape (sample i uses shape i // K).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--seed", type=click.IntRange(0), default=0, show_default=True,
              help="Dataset seed; a held-out test set is just another seed (e.g. 999).")
@click.option("--workers", type=click.IntRange(1), default=1, show_default=True,
              help="Processes; the output bytes do not depend on it.")
@click.option("--shard-index", type=click.IntRange(0), default=None,
              help="This machine's part, 0..num-shards-1 (with --num-shards).")
@click.option("--num-shards", type=click.IntRange(1), default=None,
              help="Number of parts; part i makes shards i, i+n, i+2n, ...")
@click.option("--shard-size", type=click.IntRange(1), default=1000, show_default=True,
              help="Samples per shard file.")
@click.option("--sampling", type=click.Choice(["gaussian", "per-sex", "gmm"]),
              default="gaussian", show_default=True, help="Shape sampling method.")
@click.option("--canvas", type=click.IntRange(8), default=128, show_default=True,
              help="Square network canvas size, pixels.")
@click.option("--masks", "mask_format", type=click.Choice(["packed", "uint8"]),
              default="packed", show_default=True,
              help="packed: 1 bit per pixel (thresholded at 0.5); uint8: anti-aliased.")
@click.option("--frame", "frame", type=click.IntRange(64), default=None,
              help="Long side of the rendered phone frame, pixels [default: CameraSpec's].")
@click.option("--progress/--no-progress", default=True, show_default=True)
def synth(shape_model, n, poses_per_shape, out, seed, workers, shard_index, num_shards,
          shard_size, sampling, canvas, mask_format, frame, progress):
    """Render N synthetic front/side silhouette pairs into OUT/shard-*.npz.

    Deterministic (the same arguments give byte-identical shards for any --workers) and
    resumable (rerun the same command after a kill). Shard format and defaults:
    docs/SYNTH.md.
    """
    from bodyshape.calibrate import CalibrationSpec
    from bodyshape.render.camera import CameraSpec
    from bodyshape.synth.generate import SynthSpec
    from bodyshape.synth.shards import write_dataset

    try:
        camera = CameraSpec() if frame is None else CameraSpec(long_side=frame)
        spec = SynthSpec(camera=camera, calibration=CalibrationSpec(canvas, canvas),
                         poses_per_shape=poses_per_shape, sampling=sampling)
        summary = write_dataset(shape_model, out, n, seed, spec, workers=workers,
                                shard_index=shard_index, num_shards=num_shards,
                                progress=progress, shard_size=shard_size,
                                mask_format=mask_format)
    except (ValueError, OSError) as e:
        _fail(str(e))
    click.echo(f"wrote {summary['written']} shards, skipped {summary['skipped']} "
               f"(this part: {summary['shards']})")
    if summary["manifest"]:
        click.echo(f"dataset complete: {summary['manifest']}")
    else:
        click.echo("other parts still missing: manifest.json is written by the last part")


def _register_learning_commands() -> None:
    from bodyshape import cli_learn, cli_predict, cli_serve

    cli_learn.register(main)
    cli_predict.register(main)
    cli_serve.register(main)


_register_learning_commands()

if __name__ == "__main__":
    main()
