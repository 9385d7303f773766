"""``bodyshape predict``: one photo pair, or a CSV batch with one model load.

No logic of its own beyond argument handling and reporting; the work is
``bodyshape.predict.Predictor``, ``bodyshape.outputs.write_prediction`` and, with
``--size-chart``, ``bodyshape.sizing.recommend_charts``. Exit statuses: ``common.EXIT_*``.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import click

from bodyshape.cli.common import (EXIT_PARTIAL, checkpoint_option, device_option, fail,
                                  load_charts, open_device, reject, require_files,
                                  shape_model_option, size_chart_option, units_option)

BATCH_COLUMNS = ("id", "front", "side", "height_cm")


def _replaceable(out: Path) -> bool:
    """Whether ``out`` may be (re)placed: absent, empty, or an earlier prediction (atomic
    replacement deletes the old folder, so nothing else may be there)."""
    return not out.exists() or (out.is_dir() and (not any(out.iterdir())
                                                  or (out / "measurements.json").is_file()))


def _summary(pred, sizes, out: Path, units: str) -> str:
    content = pred.to_dict(units)
    lines = [f"{k[:-3].replace('_', ' '):>15}: {v:6.1f} {units}"
             + (f"  (MAE {content['errors'][k]:.1f})" if k in content["errors"] else "")
             for k, v in content["measurements"].items()]
    lines.append(f"{'fit IoU':>15}: front {pred.front.iou:.3f}, side {pred.side.iou:.3f}")
    lines += [f"{'size ' + s.garment:>15}: {s.note}" for s in sizes]
    lines += [f"warning: {w}" for w in pred.warnings]
    lines.append(f"mesh: {out / 'body.obj'} (+ body.glb); overlay: {out / 'overlay.png'}")
    return "\n".join(lines)


def _rows(path: Path) -> list[dict]:
    try:
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            missing = [c for c in BATCH_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                fail(f"{path}: missing column(s) {', '.join(missing)}; expected "
                     "id,front,side,height_cm[,sex][,weight_kg]")
            return list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        fail(f"{path}: cannot read the CSV ({exc})")


@click.command()
@click.option("--front", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              default=None, help="Front photo (JPEG/PNG) or person mask.")
@click.option("--side", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              default=None, help="Side photo or person mask (facing either way).")
@click.option("--height-cm", type=float, default=None, help="The person's height, cm.")
@click.option("--sex", type=click.Choice(["female", "male"]), default=None,
              help="The person's sex, if known (the network was trained with and without "
              "it; giving it helps a little).")
@click.option("--weight-kg", type=float, default=None,
              help="The person's weight, kg, if known (used by weight-aware networks; the "
              "shipped one is not).")
@click.option("--batch", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              default=None, help="CSV with columns id,front,side,height_cm[,sex][,weight_kg]; "
              "paths relative to the CSV.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output folder [default: prediction/ for a pair; required for --batch].")
@click.option("--masks/--photos", "masks", default=None,
              help="Force mask or photo inputs [default: masks when two-valued].")
@click.option("--refine-masks", is_flag=True, help="Refine photo masks with GrabCut (slow).")
@click.option("--fit-pose", is_flag=True,
              help="Fit the pose to the photos so the fit check (IoU, overlay) shows the posed "
              "body; measurements are unchanged (slower: docs/BENCHMARKS.md).")
@click.option("--refine", is_flag=True,
              help="Fit the pose, then the shape too, to the silhouettes (slower; changes the "
              "measurements: see docs/PREDICT.md for whether it helps).")
@units_option()
@click.option("--obj-up", type=click.Choice(["y", "z"]), default="y", show_default=True,
              help="Up axis of body.obj: y (Y up, facing +Z, as Blender, MeshLab and most "
              "viewers import OBJ; the GLB's axes) or z (Z up, facing -Y: anny's axes).")
@size_chart_option()
@device_option()
@checkpoint_option()
@shape_model_option(help="PCA shape model (.npz) the network was trained for.")
def predict(front, side, height_cm, sex, weight_kg, batch, out, masks, refine_masks, fit_pose,
            refine, units, obj_up, size_charts, device, ckpt, shape_model):
    """Body mesh and tape measurements from a front and a side photo plus the height.

    Exit status: 0 done; 1 a batch with failed pairs; 2 usage error; 3 a photo refused;
    4 internal error.
    """
    from bodyshape.checkpoint import CheckpointError
    from bodyshape.inputs import InputError, check_height, check_weight

    if batch is None:
        if front is None or side is None or height_cm is None:
            fail("give --front, --side and --height-cm (or --batch pairs.csv)")
        try:
            check_height(height_cm)
            if weight_kg is not None:
                check_weight(weight_kg)
        except InputError as exc:
            fail(str(exc))
    elif front or side or height_cm is not None or sex or weight_kg is not None:
        fail("--batch takes the pairs from the CSV; do not combine it with --front/--side/"
             "--height-cm/--sex/--weight-kg")
    elif out is None:
        fail("--batch needs --out DIR")
    charts = load_charts(size_charts)
    require_files(ckpt, shape_model)
    rows = _rows(batch) if batch is not None else None
    out = out or Path("prediction")
    if rows is None and not _replaceable(out):
        fail(f"{out} exists and is not an earlier prediction folder; choose another --out")
    from bodyshape.distributed import gather_lists, launcher_slot, local_device
    from bodyshape.outputs import write_prediction
    from bodyshape.predict import Predictor
    from bodyshape.sizing import recommend_charts

    dev = open_device(device)
    try:
        dev = local_device(dev)  # under torchrun: this process's GPU
        predictor = Predictor.load(ckpt, shape_model, device=dev)
    except (ValueError, OSError, CheckpointError) as exc:
        fail(str(exc))

    def run(front_path, side_path, height, sex_, weight, target: Path):
        pred = predictor(front_path, side_path, height, sex_, masks=masks,
                         refine_masks=refine_masks, fit_pose=fit_pose, refine=refine,
                         weight_kg=weight)
        sizes = recommend_charts(pred.measurements, charts, pred.errors_cm)
        write_prediction(pred, target, units=units, obj_up=obj_up, sizes=sizes)
        return pred, sizes

    with predictor:
        if rows is None:
            try:
                pred, sizes = run(front, side, height_cm, sex, weight_kg, out)
            except ValueError as exc:  # InputError, PhotoError: the photo is refused
                reject(str(exc))
            except OSError as exc:
                fail(str(exc))
            click.echo(_summary(pred, sizes, out, units))
            return
        failed = []
        # Under torchrun (or any launcher setting RANK/WORLD_SIZE) each process takes
        # every WORLD_SIZE-th row; the per-row output folders never collide.
        rank, world = launcher_slot()
        for i, row in list(enumerate(rows, start=2))[rank::world]:  # header: line 1
            rid = (row.get("id") or "").strip()
            try:
                if not rid or Path(rid).name != rid or rid in (".", ".."):
                    raise ValueError(f"bad id {rid!r} (a plain name is needed)")
                target = out / rid
                if not _replaceable(target):
                    raise ValueError(f"{target} exists and is not an earlier prediction")
                base = batch.parent
                run(base / (row["front"] or "").strip(), base / (row["side"] or "").strip(),
                    row["height_cm"], (row.get("sex") or "").strip() or None,
                    (row.get("weight_kg") or "").strip() or None, target)
                click.echo(f"{rid}: ok -> {target}")
            except (ValueError, OSError, KeyError) as exc:
                failed.append(rid or f"line {i}")
                click.echo(f"error: {rid or f'line {i}'}: {exc}", err=True)
        failed = gather_lists(failed)  # every process's, once all are done
        if rank == 0:
            click.echo(f"{len(rows) - len(failed)} of {len(rows)} pairs done"
                       + (f"; failed: {', '.join(failed)}" if failed else ""))
        if failed:
            sys.exit(EXIT_PARTIAL)


COMMANDS = (predict,)
