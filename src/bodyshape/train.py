"""Training stages: front, side, fusion (and the two-channel baseline).

``train_stage(config, data, out)`` trains one network on a finished synthetic dataset and
writes ``out/checkpoint.pt`` (``bodyshape.checkpoint``) after every epoch, plus
``out/history.csv`` and ``out/loss.png``. Rerunning the same call after a kill resumes from
the last finished epoch, seeing the batches an uninterrupted run sees.

Loss per batch: ``w_pca * pca_loss + w_mesh * mesh_loss + iou_weight * (1 - soft IoU)
+ pose_weight * pose_loss + girth_weight * girth_loss``, with (w_pca, w_mesh) from the epoch
schedule (default 0.9/0.1 -> 0.7/0.3 -> 0.5/0.5 -> 0.2/0.8), the IoU term on ``iou_samples``
samples of the batch, rendered at ``iou_size`` pixels through their known cameras
(``nets.reproject``; the soft rasterizer is the costly part on a CPU, hence the sub-batch),
the pose term on the pose heads' angles (mean squared radians) and the girth term on the
differentiable tape girths (``nets.girths``), from ``girth_start`` of training on.

Inputs (``nets.inputs``): each view's mask, with part channels for part-aware networks
(hidden for a random ``parts_dropout`` of the samples, as for mask inputs without
landmarks), stature, sex (hidden for ``sex_dropout``), and for weight-aware networks the
body weight: the true mesh's volume x ``body.anthropometry.BODY_DENSITY_KG_M3`` plus
self-report noise, hidden for ``weight_dropout``.

Fusion reuses the front and side checkpoints as branches; ``branch_mode``: "frozen", "same"
(same learning rate) or "lower" (``branch_lr_scale`` times the rate)."""

from __future__ import annotations

import csv
import dataclasses
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from bodyshape.body import POSE_NAMES, BodyModel
from bodyshape.body.anthropometry import SELF_REPORT_STD_KG, body_weight_kg
from bodyshape.body.kinematics import pose_rotations
from bodyshape.checkpoint import ModelSpec, load_checkpoint, save_checkpoint
from bodyshape.dataset.stream import Augment, ShardDataset
from bodyshape.device import autocast
from bodyshape.distributed import current_job
from bodyshape.nets import EncoderConfig, FusionModel, HeadConfig, InputConfig, MeshDecoder
from bodyshape.nets.girths import SurrogateGirths
from bodyshape.nets.inputs import NetInput, run_network, to_device
from bodyshape.nets.losses import (WeightSchedule, girth_loss, mesh_loss, pca_loss, soft_iou,
                                   vertex_error_mm)
from bodyshape.nets.reproject import Reprojector, scale_intrinsics

logger = logging.getLogger(__name__)

STAGES = ("front", "side", "fusion", "two-channel")
BRANCH_MODES = ("frozen", "same", "lower")


#: Fields added after runs were first saved, at the values those runs trained with (off),
#: for checking an older run's config on resume: some defaults have changed since.
ADDED_OFF = {"parts": False, "parts_dropout": 0.2, "weight_input": False, "weight_dropout": 0.5,
             "pose_weight": 0.0, "girth_weight": 0.0, "girth_start": 0.25}


@dataclass(frozen=True)
class TrainConfig:
    """One training run.

    Attributes:
        stage: "front", "side", "fusion" or "two-channel".
        epochs, batch_size, lr, weight_decay: AdamW with a cosine learning-rate decay to 2 %
            of ``lr`` over all steps.
        schedule: epoch schedule of the PCA and mesh loss weights.
        iou_weight: weight of the re-projection loss (0 turns it off).
        iou_samples: samples per batch that are rendered for it.
        iou_size: render resolution (square, pixels); targets are area-averaged to it.
        iou_sigma: soft rasterizer sharpness, px^2 at ``iou_size``.
        pca_init: initialize the last layer from the PCA (bias = mean training
            coefficients, zero weights) instead of PyTorch's default initialization.
        decoder_trainable: train the PCA mesh-decoding layer too.
        branch_mode, branch_lr_scale: fusion only (module docs).
        augment: apply the default segmentation-noise augmentation to training masks.
        sex_dropout: fraction of training samples whose sex is hidden (code -1), so the
            network also serves users who do not give it.
        parts: part-aware network (part channels per view); parts_dropout: fraction of
            samples whose part channels are hidden.
        weight_input: weight-aware network; weight_dropout: fraction of samples whose
            weight is hidden, so the network works without it.
        pose_weight: weight of the pose heads' loss (0: no pose heads).
        girth_weight: weight of the girth loss (0: off); girth_start: fraction of training
            after which it applies (girths mean little while the shape is far off).
        encoder, head, fusion_head: network sizes.
        seed: initialization, shuffling and augmentation seed.
        val_samples: held-out samples evaluated after each epoch (0: none).
        max_steps: stop each epoch after this many batches (0: the whole epoch); for quick
            runs and tests.
        loader_workers: DataLoader worker processes (augmentation runs there).
    """

    stage: str
    epochs: int = 8
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    schedule: WeightSchedule = field(default_factory=WeightSchedule)
    iou_weight: float = 0.2
    iou_samples: int = 16
    iou_size: int = 64
    iou_sigma: float = 0.1
    pca_init: bool = False
    decoder_trainable: bool = False
    branch_mode: str = "same"
    branch_lr_scale: float = 0.1
    augment: bool = True
    sex_dropout: float = 0.3
    parts: bool = False
    parts_dropout: float = 0.2
    weight_input: bool = True
    weight_dropout: float = 0.5
    pose_weight: float = 0.0
    girth_weight: float = 0.1
    girth_start: float = 0.25
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    fusion_head: HeadConfig = field(default_factory=lambda: HeadConfig((256,)))
    seed: int = 0
    val_samples: int = 1000
    max_steps: int = 0
    loader_workers: int = 1

    def __post_init__(self):
        if self.stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {self.stage!r}")
        if self.branch_mode not in BRANCH_MODES:
            raise ValueError(f"branch_mode must be one of {BRANCH_MODES}")
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError("epochs, batch_size and lr must be positive")
        for name in ("sex_dropout", "parts_dropout", "weight_dropout", "girth_start"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if min(self.iou_weight, self.pose_weight, self.girth_weight) < 0:
            raise ValueError("loss weights must be >= 0")

    @property
    def inputs(self) -> InputConfig:
        return InputConfig(parts=self.parts, weight=self.weight_input)

    @property
    def pose_dim(self) -> int:
        return len(POSE_NAMES) if self.pose_weight > 0 else 0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class StageData:
    """Inputs of a stage: the training and validation datasets and the body model (whose
    shape model the data was generated with)."""

    train: Path
    val: Path | None
    body: BodyModel
    front: Path | None = None  # fusion: the front and side checkpoints
    side: Path | None = None


def _kind(cfg: TrainConfig) -> tuple[str, str | None]:
    """(ModelSpec kind, view) of the stage's network."""
    if cfg.stage in ("front", "side"):
        return "view", cfg.stage
    return cfg.stage, None


def _views(cfg: TrainConfig) -> tuple[int, ...]:
    """View indices (0 front, 1 side) the re-projection loss looks at."""
    return {"front": (0,), "side": (1,)}.get(cfg.stage, (0, 1))


@dataclass(frozen=True, eq=False)
class _Hiding:
    """One generator per hidden input, each seeded by (seed, epoch, input): the sex draws are
    those of the runs before part and weight inputs existed, and turning one input on or
    off never changes another's draws."""

    sex: torch.Generator
    parts: torch.Generator
    weight: torch.Generator

    @classmethod
    def for_epoch(cls, seed: int, epoch: int, rank: int = 0) -> "_Hiding":
        base = seed * 100003 + epoch + rank * 2**40  # each rank of a job its own draws
        return cls(*(torch.Generator().manual_seed(base + k * 7_919_000_003)
                     for k in range(3)))


class _Runner:
    """Everything one stage needs at every step (shape decoder, reprojector, rig, girths),
    on the stage's device."""

    def __init__(self, cfg: TrainConfig, body: BodyModel, device: torch.device):
        self.cfg, self.shape, self.device = cfg, body.shape, device
        self.k = body.shape.n_components
        self.kind, self.view = _kind(cfg)
        self.std = torch.from_numpy(body.shape.std.astype(np.float32)).to(device)
        self.decoder = MeshDecoder.from_shape_model(
            body.shape, trainable=cfg.decoder_trainable).to(device)
        self.rest_arm = body.rest_arm_angle.float().to(device)
        self.reproject = Reprojector(body, sigma=cfg.iou_sigma).to(device)
        self.faces = torch.as_tensor(np.array(body.faces), dtype=torch.long, device=device)
        self.girths = SurrogateGirths(body.shape.mean, body.template).to(device)

    def net_input(self, batch: dict, v_true: torch.Tensor, hide: "_Hiding | None"
                  ) -> NetInput:
        """The network's view of a batch (module docs). ``hide`` draws which samples lose
        their sex, parts and weight, and the weight's noise; None (validation): sex and parts
        known, weight unknown."""
        cfg = self.cfg
        b = batch["sex"].shape[0]
        sex, weight = batch["sex"], None
        parts = {v: batch.get(f"{v}_parts") for v in ("front", "side")}
        if hide is not None and cfg.sex_dropout > 0:
            drop = torch.rand(batch["sex"].shape, generator=hide.sex) < cfg.sex_dropout
            sex = torch.where(drop, torch.full_like(sex, -1), sex)
        if hide is not None and cfg.parts and cfg.parts_dropout > 0:
            drop = (torch.rand(b, generator=hide.parts) < cfg.parts_dropout)[:, None, None]
            parts = {v: None if p is None else torch.where(drop, torch.zeros_like(p), p)
                     for v, p in parts.items()}
        if cfg.weight_input:
            weight = torch.full((b,), float("nan"))
            if hide is not None:
                true = body_weight_kg(v_true.detach().double(), self.faces).float().cpu()
                noisy = true + SELF_REPORT_STD_KG * torch.randn(b, generator=hide.weight)
                keep = torch.rand(b, generator=hide.weight) >= cfg.weight_dropout
                weight = torch.where(keep, noisy, weight)
        return to_device(NetInput(batch["front"], batch["side"], batch["stature"], sex,
                                  weight, parts["front"], parts["side"]), self.device)

    def losses(self, net, batch: dict, w_pca: float, w_mesh: float, with_iou: bool = True,
               hide: "_Hiding | None" = None, w_girth: float | None = None) -> dict:
        """Loss terms of one batch (scalars): pca, mesh, vertex_mm, [iou], [pose],
        [girth, girth_mm], total. ``w_girth``: the girth loss weight now (default the
        config's)."""
        cfg, dev = self.cfg, self.device
        z_true = batch["coeffs"].to(dev) / self.std
        v_true = self.decoder(z_true).detach()
        x = self.net_input(batch, v_true, hide)
        with autocast(dev):
            out_net = run_network(net, self.kind, self.view, x)
        z = out_net.z.float()
        out = {"pca": pca_loss(z, z_true)}
        v_pred = self.decoder(z)
        out["mesh"] = mesh_loss(v_pred, v_true)
        out["vertex_mm"] = vertex_error_mm(v_pred.detach(), v_true).mean()
        total = w_pca * out["pca"] + w_mesh * out["mesh"]
        views = _views(cfg)
        if out_net.pose is not None:
            target = batch["pose_angles"][:, list(views)].float().to(dev)
            out["pose"] = ((out_net.pose.float() - target) ** 2).mean()
            total = total + cfg.pose_weight * out["pose"]
        w_girth = cfg.girth_weight if w_girth is None else w_girth
        if w_girth > 0 or not torch.is_grad_enabled():
            g_pred, g_true = self.girths(v_pred), self.girths(v_true)
            out["girth"] = girth_loss(g_pred, g_true)
            out["girth_mm"] = (g_pred.detach() - g_true).abs().mean() * 1e3
            if w_girth > 0:
                total = total + w_girth * out["girth"]
        if with_iou and cfg.iou_weight > 0 and cfg.iou_samples > 0:
            n = min(cfg.iou_samples, z.shape[0])
            # The pose angles are data (no gradient): rotations in float32 like the network.
            ious = []
            for v in views:
                # Each view has its own pose (``pose_angles`` (B, 2, P)).
                rot = pose_rotations(batch["pose_angles"][:n, v].float().to(dev), self.rest_arm)
                target = batch["front" if v == 0 else "side"][:n].to(dev)
                size = cfg.iou_size
                target = F.adaptive_avg_pool2d(target, (size, size))[:, 0]
                factor = size / batch["front"].shape[-1]
                cam = {k: batch[k][:n, v].to(dev) for k in ("canvas_K", "camera_R", "camera_t",
                                                            "yaw")}
                sil = self.reproject(v_pred[:n], rot, cam["yaw"],
                                     scale_intrinsics(cam["canvas_K"], factor),
                                     cam["camera_R"], cam["camera_t"], size, size)
                ious.append(soft_iou(sil, target))
            out["iou"] = torch.cat(ious).mean()
            total = total + cfg.iou_weight * (1.0 - out["iou"])
        out["total"] = total
        return out


def _build(cfg: TrainConfig, data: StageData, z_mean: torch.Tensor):
    """-> (spec, module, optimizer param groups)."""
    k = data.body.shape.n_components
    if cfg.stage == "fusion":
        if data.front is None or data.side is None:
            raise ValueError("the fusion stage needs the front and side checkpoints")
        branches = []
        for view, path in (("front", data.front), ("side", data.side)):
            ck = load_checkpoint(path)
            if ck.spec.kind != "view" or ck.spec.view != view:
                raise ValueError(f"{path} is not a {view} view checkpoint")
            if ck.shape_model_hash != data.body.shape.model_hash:
                raise ValueError(f"{path} was trained for another shape model")
            if ck.spec.inputs != cfg.inputs or ck.spec.pose_dim != cfg.pose_dim:
                raise ValueError(f"{path} takes other inputs or poses than this fusion "
                                 "config (--parts, --weight-input, --pose-weight)")
            branches.append(ck)
        spec = ModelSpec("fusion", k, branches[0].spec.encoder, branches[0].spec.head,
                         cfg.fusion_head, inputs=cfg.inputs, pose_dim=cfg.pose_dim)
        net = FusionModel(branches[0].model, branches[1].model, cfg.fusion_head)
        if cfg.pca_init:
            net.init_from_pca(z_mean)
        groups = net.param_groups(cfg.lr, cfg.branch_lr_scale if cfg.branch_mode == "lower"
                                  else 1.0, freeze_branches=cfg.branch_mode == "frozen")
        return spec, net, groups
    kind, view = _kind(cfg)
    spec = ModelSpec(kind, k, cfg.encoder, cfg.head, cfg.fusion_head, view=view,
                     inputs=cfg.inputs, pose_dim=cfg.pose_dim)
    net = spec.build()
    if cfg.pca_init:
        net.init_from_pca(z_mean)
    return spec, net, [{"params": [p for p in net.parameters() if p.requires_grad],
                        "lr": cfg.lr, "name": "all"}]


def _mean_z(ds: ShardDataset, std: np.ndarray, limit: int = 20000) -> torch.Tensor:
    """(K,) mean whitened coefficients of (up to ``limit`` samples of) the training set."""
    acc, n = 0.0, 0
    for item in ds:
        acc = acc + item["coeffs"].numpy().astype(np.float64)
        n += 1
        if n >= limit:
            break
    return torch.from_numpy((acc / n / std).astype(np.float32))


@torch.no_grad()
def validate(runner: _Runner, net, root: Path, n: int, batch_size: int = 64) -> dict:
    """Mean loss terms (PCA, mesh, vertex error mm, girth and girth error mm, pose) over the
    first ``n`` samples of a held-out set (no augmentation; sex and parts known, weight
    unknown), and the soft re-projection IoU on its first batch."""
    loader = torch.utils.data.DataLoader(ShardDataset(root, shuffle=False,
                                                      parts=runner.cfg.parts),
                                         batch_size=batch_size)
    net.eval()
    sums: dict[str, float] = {}
    count = 0
    for batch in loader:
        out = runner.losses(net, batch, 1.0, 1.0, with_iou=count == 0)
        b = batch["coeffs"].shape[0]
        for key, val in out.items():
            if key == "iou":
                sums["iou"] = float(val) * n  # first batch only; undone below
            elif key != "total":
                sums[key] = sums.get(key, 0.0) + float(val) * b
        count += b
        if count >= n:
            break
    net.train()
    return {f"val_{k}": v / (n if k == "iou" else count) for k, v in sums.items()}


def _plot(history: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    ep = [h["epoch"] for h in history]
    for ax, keys, title in ((axes[0], ("pca", "val_pca"), "PCA loss (whitened MSE)"),
                            (axes[1], ("vertex_mm", "val_vertex_mm"), "vertex error, mm"),
                            (axes[2], ("iou", "val_iou"), "soft re-projection IoU")):
        for key in keys:
            if any(key in h for h in history):
                ax.plot(ep, [h.get(key, np.nan) for h in history], marker="o", label=key)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("epoch")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _write_history(history: list[dict], out: Path) -> None:
    keys = sorted({k for h in history for k in h}, key=lambda k: (k != "epoch", k))
    tmp = out / ".history.csv.tmp"
    with tmp.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(history)
    os.replace(tmp, out / "history.csv")
    _plot(history, out / "loss.png")


def train_stage(cfg: TrainConfig, data: StageData, out: str | os.PathLike,
                progress: bool = True, device: torch.device | str = "cpu") -> Path:
    """Train (or resume) one stage on ``device``; returns the checkpoint path (module docs).

    Every tensor of a step (network, decoder, girths, soft rasterizer) lives on ``device``;
    on CUDA the network runs under bfloat16 autocast. The checkpoint is saved from the CPU
    and resumes on any device.

    Raises:
        ValueError: if the data was made with another shape model, or ``out`` holds a run
            with another config.
    """
    from tqdm import tqdm

    out = Path(out)
    device = torch.device(device)
    job = current_job()  # torchrun's processes (bodyshape.distributed), or this one alone
    local = job.local_config(cfg)  # this rank's batch and IoU renders
    out.mkdir(parents=True, exist_ok=True)
    model = data.body.shape
    train_ds = ShardDataset(data.train, shuffle=True, seed=cfg.seed,
                            augment=Augment() if cfg.augment else None, parts=cfg.parts,
                            rank=job.rank, world_size=job.world)
    if train_ds.config["shape_model_hash"] != model.model_hash:
        raise ValueError(f"{data.train} was generated with another shape model")
    if data.val is not None and ShardDataset(data.val).config["shape_model_hash"] \
            != model.model_hash:
        raise ValueError(f"{data.val} was generated with another shape model")
    ckpt_path = out / "checkpoint.pt"
    torch.manual_seed(cfg.seed)  # weight initialization (torch has no per-module generator)
    runner = _Runner(local, data.body, device)
    resume = load_checkpoint(ckpt_path) if ckpt_path.exists() else None
    # Fields missing from an older run: ``ADDED_OFF``, else today's defaults.
    if resume is not None and {**TrainConfig(cfg.stage).to_dict(), **ADDED_OFF,
                               **resume.train.get("config", {})} != cfg.to_dict():
        raise ValueError(f"{out} holds a run with another config; use another --out")
    z_mean = resume.z_mean if resume else _mean_z(
        ShardDataset(data.train), model.std.astype(np.float64))
    spec, net, groups = _build(cfg, data, z_mean)
    net.to(device)  # in place: the optimizer's groups keep pointing at these parameters
    opt = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    # Before any resumed state: a saved optimizer holds the last *decayed* rates.
    base_lrs = [g["lr"] for g in opt.param_groups]
    start, history = 0, []
    if resume is not None:
        net.load_state_dict(resume.model.state_dict())
        opt.load_state_dict(resume.train["optimizer"])
        start, history = int(resume.train["epoch"]), list(resume.train["history"])
        logger.info("resuming %s at epoch %d", out, start)
        if resume.train.get("world_size", 1) != job.world:
            logger.warning("resuming a run of %d processes on %d: its batches will differ "
                           "from an uninterrupted run's", resume.train.get("world_size", 1),
                           job.world)
    step_net = job.wrap(net, device, unused_parameters=cfg.stage == "fusion")
    plan = job.plan(train_ds, local.batch_size, cfg.loader_workers, cfg.epochs, cfg.max_steps)
    total_steps = sum(plan)
    calibration = train_ds.config["spec"]["calibration"]
    net.train()
    for epoch in range(start, cfg.epochs):
        w_pca, w_mesh = cfg.schedule.weights(epoch, cfg.epochs)
        train_ds.set_epoch(epoch)
        loader = torch.utils.data.DataLoader(train_ds, batch_size=local.batch_size,
                                             num_workers=cfg.loader_workers)
        sums: dict[str, float] = {}
        n_batches, n_real, t0 = 0, 0, time.perf_counter()
        hide = _Hiding.for_epoch(cfg.seed, epoch, job.rank)
        w_girth = cfg.girth_weight if epoch >= cfg.girth_start * cfg.epochs else 0.0
        bar = tqdm(total=plan[epoch], disable=not (progress and job.is_main), unit="batch",
                   desc=f"{cfg.stage} {epoch + 1}/{cfg.epochs}")
        for batch, weight in job.batches(loader, plan[epoch]):
            step = sum(plan[:epoch]) + n_batches
            decay = 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * step / total_steps))
            for g, lr in zip(opt.param_groups, base_lrs):
                g["lr"] = lr * decay
            terms = runner.losses(step_net, batch, w_pca, w_mesh, hide=hide, w_girth=w_girth)
            if not job.all_finite(terms["total"]):
                raise FloatingPointError(
                    f"non-finite loss at epoch {epoch + 1}, batch {n_batches + 1}; the last "
                    f"good checkpoint (epoch {epoch}) is kept in {ckpt_path}")
            opt.zero_grad(set_to_none=True)
            (terms["total"] * weight if job.world > 1 else terms["total"]).backward()
            opt.step()
            for key, val in terms.items():
                sums[key] = sums.get(key, 0.0) + float(val.detach()) * (weight > 0)
            n_batches, n_real = n_batches + 1, n_real + (weight > 0)
            bar.update()
            bar.set_postfix(pca=f"{float(terms['pca'].detach()):.3f}",
                            mm=f"{float(terms['vertex_mm']):.1f}")
        bar.close()
        row = {"epoch": epoch + 1, "w_pca": w_pca, "w_mesh": w_mesh, "w_girth": w_girth,
               "seconds": time.perf_counter() - t0, **job.means(sums, n_real)}
        if not job.is_main:  # rank 0 alone validates and writes
            job.barrier()
            continue
        if data.val is not None and cfg.val_samples > 0:
            row.update(validate(runner, net, data.val, cfg.val_samples))
        history.append(row)
        logger.info("epoch %d: %s", epoch + 1, {k: round(v, 4) for k, v in row.items()})
        save_checkpoint(ckpt_path, spec, net, model.model_hash, calibration, z_mean,
                        train={"config": cfg.to_dict(), "epoch": epoch + 1,
                               "history": history, "optimizer": opt.state_dict(),
                               "data": str(data.train), "world_size": job.world})
        _write_history(history, out)
        job.barrier()
    return ckpt_path
