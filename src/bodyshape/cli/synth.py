"""``bodyshape synth``: render synthetic front/side silhouette pairs into shards;
``bodyshape synth merge DIR``: check the parts of a split run and write its manifest.

Option defaults are read from ``SynthSpec``, ``CameraSpec`` and ``write_dataset``; the
synth modules are imported only when the command runs or shows its help. Inside a Slurm
job array, the part comes from the array variables unless the flags give it
(``bodyshape.synth.parts``).
"""

from __future__ import annotations

from pathlib import Path

import click

from bodyshape.cli.common import default_of, fail, shape_model_option

SPEC = "bodyshape.synth.generate:SynthSpec"
CAMERA = "bodyshape.render.camera:CameraSpec"
WRITE = "bodyshape.synth.shards:write_dataset"


@click.group(invoke_without_command=True)
@shape_model_option()
@click.option("--n", "n", type=click.IntRange(1), default=None,
              help="Number of front/side pairs (all parts together). Required.")
@click.option("--poses-per-shape", type=click.IntRange(1),
              default=default_of(SPEC, "poses_per_shape"), show_default=True,
              help="Pose/camera variants per body shape (sample i uses shape i // K).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Dataset folder (shards and manifest.json). Required.")
@click.option("--seed", type=click.IntRange(0), default=0, show_default=True,
              help="Dataset seed; a held-out test set is just another seed (e.g. 999).")
@click.option("--workers", type=click.IntRange(1), default=default_of(WRITE, "workers"),
              show_default=True, help="Processes; the output bytes do not depend on it.")
@click.option("--shard-index", type=click.IntRange(0), default=None,
              help="This machine's part, 0..num-shards-1 (with --num-shards) [default: "
                   "from SLURM_ARRAY_TASK_ID in a Slurm job array, else the whole set].")
@click.option("--num-shards", type=click.IntRange(1), default=None,
              help="Number of parts; part i makes shards i, i+n, i+2n, ... [default: "
                   "SLURM_ARRAY_TASK_COUNT in a Slurm job array, else 1].")
@click.option("--shard-size", type=click.IntRange(1), default=default_of(WRITE, "shard_size"),
              show_default=True, help="Samples per shard file.")
@click.option("--sampling", type=click.Choice(["gaussian", "per-sex", "gmm"]),
              default=default_of(SPEC, "sampling"), show_default=True,
              help="Shape sampling method.")
@click.option("--canvas", type=click.IntRange(8),
              default=default_of(SPEC, "calibration.canvas_width"), show_default=True,
              help="Square network canvas size, pixels.")
@click.option("--masks", "mask_format", type=click.Choice(["packed", "uint8"]),
              default=default_of(WRITE, "mask_format"), show_default=True,
              help="packed: 1 bit per pixel (thresholded at 0.5); uint8: anti-aliased.")
@click.option("--frame", "frame", type=click.IntRange(64),
              default=default_of(CAMERA, "long_side"), show_default=True,
              help="Long side of the rendered phone frame, pixels.")
@click.option("--preset", type=click.Choice(["realistic", "clean"]), default="realistic",
              show_default=True,
              help="realistic: each view its own photo pose, clothing, hair and shoes; "
                   "clean: one near-A pose for both views and naked bodies (the original "
                   "data).")
@click.option("--shared-pose/--per-view-pose", default=None,
              help="Override the preset: one pose for both views, or one per view.")
@click.option("--garments/--no-garments", default=None,
              help="Override the preset: dress the bodies or leave them naked.")
@click.option("--progress/--no-progress", default=True, show_default=True,
              help="Show a progress bar.")
@click.pass_context
def synth(ctx, shape_model, n, poses_per_shape, out, seed, workers, shard_index, num_shards,
          shard_size, sampling, canvas, mask_format, frame, preset, shared_pose, garments,
          progress):
    """Render N synthetic front/side silhouette pairs into OUT/shard-*.npz.

    Deterministic (the same arguments give byte-identical shards for any --workers or
    split) and resumable (rerun the same command after a kill). In a Slurm job array each
    task makes its part; then `bodyshape synth merge OUT`. Shard format and defaults:
    docs/SYNTH.md.
    """
    if ctx.invoked_subcommand is not None:
        given = [p.opts[0] for p in ctx.command.params if ctx.get_parameter_source(p.name)
                 is not click.core.ParameterSource.DEFAULT]
        if given:
            fail(f"`synth {ctx.invoked_subcommand}` takes no synth options ({given[0]})")
        return
    for value, flag in ((n, "--n"), (out, "--out")):
        if value is None:
            raise click.UsageError(f"Missing option '{flag}'.", ctx)
    shard_index, num_shards = _part(shard_index, num_shards)
    import dataclasses

    from bodyshape.calibrate import CalibrationSpec
    from bodyshape.render.camera import CameraSpec
    from bodyshape.synth.garments import GarmentSpec
    from bodyshape.synth.generate import SynthSpec
    from bodyshape.synth.shards import write_dataset

    try:
        make = SynthSpec.clean if preset == "clean" else SynthSpec
        spec = make(camera=CameraSpec(long_side=frame),
                    calibration=CalibrationSpec(canvas, canvas),
                    poses_per_shape=poses_per_shape, sampling=sampling)
        if shared_pose is not None:
            spec = dataclasses.replace(spec, shared_pose=shared_pose)
        if garments is not None:
            spec = dataclasses.replace(spec, garments=GarmentSpec() if garments else None)
        summary = write_dataset(shape_model, out, n, seed, spec, workers=workers,
                                shard_index=shard_index, num_shards=num_shards,
                                progress=progress, shard_size=shard_size,
                                mask_format=mask_format)
    except (ValueError, OSError) as e:
        fail(str(e))
    click.echo(f"wrote {summary['written']} shards, skipped {summary['skipped']} "
               f"(this part: {summary['shards']})")
    if summary["manifest"]:
        click.echo(f"dataset complete: {summary['manifest']}")
    else:
        click.echo("other parts still missing: manifest.json is written by the last part")


def _part(shard_index, num_shards):
    """The flags' part, else a Slurm array task's (echoed), else (None, None)."""
    from bodyshape.synth.parts import array_part

    if shard_index is not None or num_shards is not None:
        return shard_index, num_shards
    try:
        part = array_part()
    except ValueError as exc:
        fail(str(exc))
    if part is None:
        return None, None
    click.echo(f"part {part.index} of {part.count} (Slurm array task {part.task})")
    return part.index, part.count


@synth.command()
@click.argument("folder", type=click.Path(file_okay=False, exists=True, path_type=Path))
def merge(folder):
    """Check the parts written into FOLDER and write its manifest.json.

    Refuses parts of another dataset, shards recorded twice with different bytes, foreign
    and corrupt shards, and names the parts to rerun when shards are missing.
    """
    from bodyshape.dataset.shard_format import ShardError
    from bodyshape.synth.parts import merge as merge_parts

    try:
        merged = merge_parts(folder)
    except (ValueError, OSError, ShardError) as exc:
        fail(str(exc))
    click.echo(f"merged {merged.shards} shards from {len(merged.parts)} part manifests: "
               f"{merged.manifest}")


COMMANDS = (synth,)
