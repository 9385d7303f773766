"""``bodyshape predict``: one photo pair, or a CSV batch with one model load.

No logic of its own beyond argument handling and reporting; the work is
``bodyshape.predict.Predictor`` and ``bodyshape.outputs.write_prediction``.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import click

from bodyshape.cli.common import checkpoint_option, fail, require_files, shape_model_option

BATCH_COLUMNS = ("id", "front", "side", "height_cm")


def _safe_out(out: Path) -> None:
    """Refuse to replace a folder that is not an earlier prediction (atomic replacement
    deletes the old folder)."""
    if out.exists() and (not out.is_dir() or (any(out.iterdir())
                                              and not (out / "measurements.json").is_file())):
        raise ValueError(f"{out} exists and is not an earlier prediction folder; "
                         "choose another --out")


def _summary(pred, out: Path) -> str:
    m = pred.measurements
    lines = [f"{k[:-3].replace('_', ' '):>15}: {v:6.1f} cm" for k, v in m.items()]
    lines.append(f"{'fit IoU':>15}: front {pred.front.iou:.3f}, side {pred.side.iou:.3f}")
    lines += [f"warning: {w}" for w in pred.warnings]
    lines.append(f"mesh: {out / 'body.obj'} (+ body.glb); overlay: {out / 'overlay.png'}")
    return "\n".join(lines)


def _rows(path: Path) -> list[dict]:
    try:
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            missing = [c for c in BATCH_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise ValueError(f"{path}: missing column(s) {', '.join(missing)}; expected "
                                 "id,front,side,height_cm[,sex]")
            return list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ValueError(f"{path}: cannot read the CSV ({exc})") from exc


@click.command()
@click.option("--front", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Front photo (JPEG/PNG) or person mask.")
@click.option("--side", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Side photo or person mask (facing either way).")
@click.option("--height-cm", type=float, default=None, help="The person's height, cm.")
@click.option("--sex", type=click.Choice(["female", "male"]), default=None,
              help="The person's sex, if known.")
@click.option("--batch", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              default=None, help="CSV with columns id,front,side,height_cm[,sex].")
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
@checkpoint_option()
@shape_model_option()
def predict(front, side, height_cm, sex, batch, out, masks, refine_masks, fit_pose, refine, ckpt,
            shape_model):
    """Body mesh and tape measurements from a front and a side photo plus the height."""
    from bodyshape.checkpoint import CheckpointError
    from bodyshape.outputs import write_prediction
    from bodyshape.predict import Predictor

    if batch is None:
        if front is None or side is None or height_cm is None:
            fail("give --front, --side and --height-cm (or --batch pairs.csv)")
    elif front or side or height_cm is not None or sex:
        fail("--batch takes the pairs from the CSV; do not combine it with --front/--side/"
              "--height-cm/--sex")
    elif out is None:
        fail("--batch needs --out DIR")
    require_files(ckpt, shape_model)
    try:
        predictor = Predictor.load(ckpt, shape_model)
    except (ValueError, OSError, CheckpointError) as exc:
        fail(str(exc))
    try:
        if batch is None:
            out = out or Path("prediction")
            try:
                _safe_out(out)
                pred = predictor(front, side, height_cm, sex, masks=masks,
                                 refine_masks=refine_masks, fit_pose=fit_pose,
                                 refine=refine)
                write_prediction(pred, out)
            except (ValueError, OSError) as exc:
                fail(str(exc))
            click.echo(_summary(pred, out))
            return
        try:
            rows = _rows(batch)
        except ValueError as exc:
            fail(str(exc))
        failed = []
        for i, row in enumerate(rows, start=2):  # line numbers: the header is line 1
            rid = (row.get("id") or "").strip()
            try:
                if not rid or Path(rid).name != rid or rid in (".", ".."):
                    raise ValueError(f"bad id {rid!r} (a plain name is needed)")
                target = out / rid
                _safe_out(target)
                base = batch.parent
                pred = predictor(base / row["front"].strip(), base / row["side"].strip(),
                                 row["height_cm"], (row.get("sex") or "").strip() or None,
                                 masks=masks, refine_masks=refine_masks, fit_pose=fit_pose,
                                 refine=refine)
                write_prediction(pred, target)
                click.echo(f"{rid}: ok -> {target}")
            except (ValueError, OSError, KeyError) as exc:
                failed.append(rid or f"line {i}")
                click.echo(f"error: {rid or f'line {i}'}: {exc}", err=True)
        click.echo(f"{len(rows) - len(failed)} of {len(rows)} pairs done"
                   + (f"; failed: {', '.join(failed)}" if failed else ""))
        if failed:
            sys.exit(1)
    finally:
        predictor.close()


COMMANDS = (predict,)
