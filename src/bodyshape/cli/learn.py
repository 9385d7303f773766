"""Learning-stage commands: ``train``, ``eval``, ``export-model`` and ``viz features``.

The default network itself is trained by ``scripts/train_default.sh`` (a chain of
``bodyshape synth`` and ``bodyshape train`` calls). ``train``'s option defaults are
``TrainConfig``'s fields, read when the command runs or shows its help, so that torch is
imported only by the commands that need it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from bodyshape.cli.common import (
    checkpoint_option,
    default_of,
    device_option,
    fail,
    load_shape_model,
    open_device,
    shape_model_option,
)

CONFIG = "bodyshape.train:TrainConfig"


def _load_body(shape_model: Path):
    """The BodyModel (template, rig, coarse mesh) with the shape model at ``shape_model``."""
    from bodyshape.body import BodyModel

    model = load_shape_model(shape_model)
    try:
        return BodyModel.load(model)
    except ValueError as exc:  # a shape model of another template
        fail(f"{shape_model}: {exc}")


def _without_nproc(argv: list[str]) -> list[str]:
    """The command line ``argv`` without its ``--nproc N`` (or ``--nproc=N``)."""
    out, skip = [], False
    for arg in argv:
        if skip or arg.startswith("--nproc="):
            skip = False
        elif arg == "--nproc":
            skip = True
        else:
            out.append(arg)
    return out


def _check_dataset(path: Path, what: str) -> None:
    if not (path / "manifest.json").is_file():
        fail(f"{what} {path} is not a finished dataset (no manifest.json); make it with "
             "`bodyshape synth` first")


@click.command()
@click.option("--stage", type=click.Choice(["front", "side", "fusion", "two-channel"]),
              required=True, help="front and side first; fusion reuses their checkpoints.")
@click.option("--data", "data_dir", type=click.Path(file_okay=False, path_type=Path),
              required=True, help="Training dataset (bodyshape synth output).")
@click.option("--val", "val_dir", type=click.Path(file_okay=False, path_type=Path),
              default=None, help="Held-out dataset evaluated after each epoch.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Run folder: checkpoint.pt, history.csv, loss.png. Rerun to resume.")
@click.option("--front", "front_ckpt", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Fusion: the front checkpoint.")
@click.option("--side", "side_ckpt", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Fusion: the side checkpoint.")
@shape_model_option()
@click.option("--epochs", type=click.IntRange(1), default=default_of(CONFIG, "epochs"),
              show_default=True, help="Passes over the training data.")
@click.option("--batch-size", type=click.IntRange(1), default=default_of(CONFIG, "batch_size"),
              show_default=True, help="Samples per batch.")
@click.option("--lr", type=click.FloatRange(0, min_open=True),
              default=default_of(CONFIG, "lr"), show_default=True, help="Learning rate.")
@click.option("--iou-weight", type=click.FloatRange(0),
              default=default_of(CONFIG, "iou_weight"), show_default=True,
              help="Silhouette re-projection loss weight (0: off).")
@click.option("--iou-samples", type=click.IntRange(0),
              default=default_of(CONFIG, "iou_samples"), show_default=True,
              help="Samples per batch rendered for the re-projection loss.")
@click.option("--iou-size", type=click.IntRange(16), default=default_of(CONFIG, "iou_size"),
              show_default=True,
              help="Render resolution of the re-projection loss (square, pixels).")
@click.option("--schedule", type=click.Choice(["scheduled", "pca-only", "fixed"]),
              default="scheduled", show_default=True,
              help="PCA/mesh loss weights: 0.9/0.1 -> 0.2/0.8 by quarter, 1/0, or 0.5/0.5.")
@click.option("--pca-init/--no-pca-init", default=default_of(CONFIG, "pca_init"),
              show_default=True,
              help="Initialize the last layer from the PCA (else PyTorch's default).")
@click.option("--branch-mode", type=click.Choice(["frozen", "same", "lower"]),
              default=default_of(CONFIG, "branch_mode"), show_default=True,
              help="Fusion: learning rate of branches.")
@click.option("--branch-lr-scale", type=click.FloatRange(0, min_open=True),
              default=default_of(CONFIG, "branch_lr_scale"), show_default=True,
              help="Fusion with --branch-mode lower: branch learning rate / --lr.")
@click.option("--augment/--no-augment", default=default_of(CONFIG, "augment"),
              show_default=True, help="Segmentation-noise augmentation of the training masks.")
@click.option("--parts/--no-parts", default=default_of(CONFIG, "parts"), show_default=True,
              help="Part-aware network: one input channel per body-part group per view.")
@click.option("--parts-dropout", type=click.FloatRange(0, 1),
              default=default_of(CONFIG, "parts_dropout"), show_default=True,
              help="With --parts: fraction of samples whose parts are hidden (mask inputs).")
@click.option("--weight-input/--no-weight-input", default=default_of(CONFIG, "weight_input"),
              show_default=True, help="Weight-aware network (body weight as an input).")
@click.option("--weight-dropout", type=click.FloatRange(0, 1),
              default=default_of(CONFIG, "weight_dropout"), show_default=True,
              help="With --weight-input: fraction of samples whose weight is hidden.")
@click.option("--pose-weight", type=click.FloatRange(0),
              default=default_of(CONFIG, "pose_weight"), show_default=True,
              help="Pose heads' loss weight (0: no pose heads).")
@click.option("--girth-weight", type=click.FloatRange(0),
              default=default_of(CONFIG, "girth_weight"), show_default=True,
              help="Tape-girth loss weight (0: off).")
@click.option("--girth-start", type=click.FloatRange(0, 1),
              default=default_of(CONFIG, "girth_start"), show_default=True,
              help="Fraction of the epochs after which the girth loss applies.")
@device_option()
@click.option("--seed", type=click.IntRange(0), default=default_of(CONFIG, "seed"),
              show_default=True, help="Initialization, shuffling and augmentation seed.")
@click.option("--threads", type=click.IntRange(1), default=None,
              help="torch threads [default: all cores].")
@click.option("--max-steps", type=click.IntRange(0), default=default_of(CONFIG, "max_steps"),
              help="Batches per epoch at most (0: whole epochs).")
@click.option("--progress/--no-progress", default=True, show_default=True,
              help="Show a progress bar.")
@click.option("--nproc", type=click.IntRange(1), default=None,
              help="Train in N processes on this machine (torchrun --standalone; CPU "
                   "processes, or one per GPU). --batch-size stays the global batch.")
def train(stage, data_dir, val_dir, out, front_ckpt, side_ckpt, shape_model, epochs,
          batch_size, lr, iou_weight, iou_samples, iou_size, schedule, pca_init, branch_mode,
          branch_lr_scale, augment, parts, parts_dropout, weight_input, weight_dropout,
          pose_weight, girth_weight, girth_start, device, seed, threads, max_steps, progress,
          nproc):
    """Train one network stage on synthetic shards (resumable; docs/TRAINING.md).

    Under torchrun (torchrun --nproc-per-node N -m bodyshape train ...) each process trains
    its share of every batch; rank 0 writes the run folder.
    """
    import torch

    from bodyshape.checkpoint import CheckpointError
    from bodyshape.distributed import close_job, init_job, launch
    from bodyshape.nets.losses import WeightSchedule
    from bodyshape.train import StageData, TrainConfig, train_stage

    if nproc is not None and nproc > 1:
        try:
            sys.exit(launch(nproc, _without_nproc(sys.argv[1:])))
        except ValueError as exc:
            fail(str(exc))
    if threads:
        torch.set_num_threads(threads)
    try:
        job, dev = init_job(open_device(device))
    except ValueError as exc:
        fail(str(exc))
    if stage == "fusion" and (front_ckpt is None or side_ckpt is None):
        fail("--stage fusion needs --front and --side checkpoints (train those stages first)")
    if stage != "fusion" and (front_ckpt or side_ckpt):
        fail("--front/--side are only for --stage fusion")
    body = _load_body(shape_model)
    _check_dataset(data_dir, "training data")
    if val_dir is not None:
        _check_dataset(val_dir, "validation data")
    sched = {"scheduled": WeightSchedule(), "pca-only": WeightSchedule.fixed(1.0, 0.0),
             "fixed": WeightSchedule.fixed(0.5, 0.5)}[schedule]
    cfg = TrainConfig(stage=stage, epochs=epochs, batch_size=batch_size, lr=lr,
                      iou_weight=iou_weight, iou_samples=iou_samples, iou_size=iou_size,
                      schedule=sched, pca_init=pca_init, branch_mode=branch_mode,
                      branch_lr_scale=branch_lr_scale, augment=augment, parts=parts,
                      parts_dropout=parts_dropout, weight_input=weight_input,
                      weight_dropout=weight_dropout, pose_weight=pose_weight,
                      girth_weight=girth_weight, girth_start=girth_start, seed=seed,
                      max_steps=max_steps)
    try:
        path = train_stage(cfg, StageData(data_dir, val_dir, body, front_ckpt, side_ckpt),
                           out, progress=progress, device=dev)
    except (ValueError, OSError, CheckpointError, FloatingPointError) as exc:
        fail(str(exc))
    finally:
        close_job(job)
    if job.is_main:
        click.echo(f"checkpoint: {path}")


@click.command(name="eval")
@checkpoint_option(help="Checkpoint.")
@click.option("--data", "data_dir", type=click.Path(file_okay=False, path_type=Path),
              required=True, help="Held-out dataset (bodyshape synth with its own seed).")
@shape_model_option()
@click.option("--limit", type=click.IntRange(1), default=None, help="First N samples only.")
@click.option("--no-sex", is_flag=True, help="Hide the sex from the network.")
@click.option("--baseline/--no-baseline", default=True, show_default=True,
              help="Also report the height-only baseline (mean body scaled to the height).")
@click.option("--measured-errors", is_flag=True,
              help="Corrupt the test masks with MediaPipe's measured segmentation errors "
                   "(Augment.measured(), fixed per sample): the realistic test set.")
@click.option("--weight-known", is_flag=True,
              help="Give weight-aware networks each body's weight (true mesh volume x "
                   "density, plus self-report noise).")
@device_option()
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the JSON report here (a .md table beside it).")
def eval_cmd(ckpt, data_dir, shape_model, limit, no_sex, baseline, measured_errors,
             weight_known, device, out):
    """Mesh, girth, stature and re-projection errors of a checkpoint on held-out data.

    Two test sets: clean (bodyshape synth --preset clean --seed 999) and realistic
    (bodyshape synth --seed 999, evaluated with --measured-errors). docs/TRAINING.md.
    Under torchrun each process evaluates its shards; rank 0 reports.
    """
    from bodyshape.checkpoint import CheckpointError, load_checkpoint
    from bodyshape.distributed import close_job, init_job
    from bodyshape.evaluate import evaluate, markdown
    from bodyshape.fileio import write_json

    try:
        job, dev = init_job(open_device(device))
    except ValueError as exc:
        fail(str(exc))
    body = _load_body(shape_model)
    _check_dataset(data_dir, "test data")
    try:
        from bodyshape.dataset.stream import Augment

        checkpoint = load_checkpoint(ckpt)
        report = evaluate(checkpoint, data_dir, body, limit=limit, sex_known=not no_sex,
                          baseline=baseline,
                          augment=Augment.measured() if measured_errors else None,
                          weight_known=weight_known, device=dev)
    except (ValueError, OSError, CheckpointError) as exc:
        fail(str(exc))
    finally:
        close_job(job)
    if not job.is_main:
        return
    table = markdown(report)
    if baseline:
        table += "\n\nHeight-only baseline (mean body scaled to the true height):\n\n" + \
            markdown(report["height_only"])
    click.echo(table)
    if out is not None:
        write_json(out, report)
        out.with_suffix(".md").write_text(table + "\n")
        click.echo(f"report: {out}")


@click.command(name="export-model")
@click.argument("src", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("dst", type=click.Path(dir_okay=False, path_type=Path))
def export_model(src, dst):
    """Copy checkpoint SRC to DST without its optimizer state (for release)."""
    from bodyshape.checkpoint import CheckpointError, export_checkpoint

    try:
        export_checkpoint(src, dst)
    except (OSError, CheckpointError) as exc:
        fail(str(exc))
    click.echo(f"exported {dst} ({dst.stat().st_size / 1e6:.1f} MB)")


@click.group()
def viz():
    """Pictures of what a network sees."""


def _read_mask(path: Path):
    import cv2
    import numpy as np

    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if img is None:
        fail(f"{path}: not a readable image")
    mask = img > 127
    if not mask.any() or mask.all():
        fail(f"{path}: no person in this mask (it must be white on black)")
    return np.ascontiguousarray(mask)


@viz.command(name="features")
@checkpoint_option()
@click.option("--front", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              required=True, help="Front person mask (white on black, any size).")
@click.option("--side", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              required=True, help="Side person mask.")
@click.option("--side-facing", type=click.Choice(["right", "left"]), default="right",
              show_default=True, help="Which way the person faces in the side mask.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Output folder of the grids (PNG).")
def viz_features(ckpt, front, side, side_facing, out):
    """Save grids of the encoders' feature maps per view and layer."""
    import numpy as np
    import torch

    from bodyshape.calibrate import CalibrationSpec, calibrate
    from bodyshape.checkpoint import CheckpointError, load_checkpoint
    from bodyshape.nets.inputs import view_channels
    from bodyshape.viz import encoders_of, feature_maps, save_feature_grids

    try:
        ck = load_checkpoint(ckpt)
    except CheckpointError as exc:
        fail(str(exc))
    spec = CalibrationSpec(**ck.calibration)
    try:
        canv = {"front": calibrate(_read_mask(front), spec).image,
                "side": calibrate(_read_mask(side), spec, mirror=side_facing == "left").image}
    except ValueError as exc:
        fail(str(exc))
    written = []
    # (C, H, W) per view; masks carry no landmarks: a part-aware network's part channels
    # stay empty, as in prediction from masks.
    canv = {k: view_channels(ck.spec.inputs, torch.from_numpy(v[None, None].copy()),
                             None)[0].numpy() for k, v in canv.items()}
    for name, enc in encoders_of(ck.model).items():
        if name == "front+side":
            x = torch.from_numpy(np.concatenate([canv["front"], canv["side"]]))
        else:
            view = name if name in canv else ck.spec.view
            x = torch.from_numpy(canv[view])
            name = view
        written += save_feature_grids(feature_maps(enc, x), out, name)
    click.echo(f"wrote {len(written)} feature grids to {out}")


COMMANDS = (train, eval_cmd, export_model, viz)
