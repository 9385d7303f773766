"""Accuracy of a checkpoint on a held-out synthetic set: mesh, tape measurements, IoU.

For every test sample the network's whitened coefficients are decoded to the canonical rest
mesh and compared with the ground truth ``model.decode(coeffs)``:

- ``vertex_mm``: mean per-vertex Euclidean distance, canonical A-pose, no alignment, mm;
- ``chest_mm``, ``waist_mm``, ``hip_mm``: absolute tape-girth errors
  (``measure.body_stats``), mm; ``stature_mm``: absolute height error, mm;
- ``iou_front``, ``iou_side``: the predicted body, put in the sample's true pose, yaw and
  canvas camera, rasterized exactly on the canvas and compared with the stored mask.

Everything is also split by sex and by BMI band (mass from the true mesh volume at a body
density of 1,000 kg/m^3: below 18.5, 18.5-25, 25-30, 30 and above). The report is a JSON
dict and a markdown table (:func:`markdown`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bodyshape.body import BodyModel
from bodyshape.body.anthropometry import SELF_REPORT_STD_KG, body_weight_kg
from bodyshape.checkpoint import Checkpoint
from bodyshape.dataset.shard_format import GARMENT_KINDS, GARMENT_LAYERS
from bodyshape.dataset.stream import Augment, ShardDataset
from bodyshape.distributed import current_job
from bodyshape.measure import body_stats
from bodyshape.nets.inputs import NetInput, run_network, to_device
from bodyshape.render.camera import Camera
from bodyshape.render.raster import mask_iou, silhouette
from bodyshape.shape.pca import ShapeModel

logger = logging.getLogger(__name__)

METRICS = ("vertex_mm", "stature_mm", "chest_mm", "waist_mm", "hip_mm", "iou_front",
           "iou_side")
BMI_BANDS = ((0.0, 18.5, "<18.5"), (18.5, 25.0, "18.5-25"), (25.0, 30.0, "25-30"),
             (30.0, 1e9, ">=30"))
DENSITY_KG_M3 = 1000.0
SEX_NAMES = {0: "female", 1: "male", -1: "unknown"}


@dataclass(frozen=True, eq=False)
class Predictions:
    """Network outputs on a test set.

    Attributes:
        coeffs_pred, coeffs_true: (N, K) raw coefficients, meters.
        sex: (N,) int codes; stature: (N,) true stature, m.
        items: the per-sample dicts needed for re-projection (pose, yaw, cameras, masks).
    """

    coeffs_pred: np.ndarray
    coeffs_true: np.ndarray
    sex: np.ndarray
    stature: np.ndarray
    items: list[dict]


@torch.no_grad()
def predict_dataset(ckpt: Checkpoint, root: str | os.PathLike, model: ShapeModel,
                    limit: int | None = None, batch_size: int = 64,
                    sex_known: bool = True, augment: Augment | None = None,
                    weight_known: bool = False, faces: np.ndarray | None = None,
                    device: torch.device | str = "cpu", rank: int = 0, world_size: int = 1
                    ) -> Predictions:
    """Run a checkpoint over (the first ``limit`` samples of) a held-out set.

    ``sex_known=False`` hides the sex from the network (code -1), as for users who give none.
    ``augment`` corrupts the test masks (e.g. ``Augment.measured()``: segmentation errors),
    with generators seeded by the sample index only, so a test set stays fixed.
    ``weight_known`` gives weight-aware networks each body's weight (its true mesh's, needs
    ``faces``) plus self-report noise seeded by the sample index; otherwise the weight is
    unknown. Part-aware networks get the part labels the dataset computes from each view's
    stored keypoints. ``rank``/``world_size``: only this process's shards of a distributed
    job (``bodyshape.distributed``).
    """
    if ckpt.shape_model_hash != model.model_hash:
        raise ValueError("the checkpoint was trained for another shape model")
    if weight_known and faces is None:
        raise ValueError("weight_known needs the template faces")
    ds = ShardDataset(root, shuffle=False, augment=augment, parts=ckpt.spec.inputs.parts,
                      rank=rank, world_size=world_size)
    if ds.config["shape_model_hash"] != model.model_hash:
        raise ValueError(f"{root} was generated with another shape model")
    device = torch.device(device)
    net = ckpt.model.eval().to(device)
    std = model.std[: ckpt.spec.n_components]
    preds, trues, sexes, statures, items = [], [], [], [], []
    for batch in torch.utils.data.DataLoader(ds, batch_size=batch_size):
        sex = batch["sex"] if sex_known else torch.full_like(batch["sex"], -1)
        weight = None
        if weight_known:
            true = body_weight_kg(torch.from_numpy(model.decode(batch["coeffs"].double()
                                                                .numpy())),
                                  torch.as_tensor(np.array(faces)))
            noise = [np.random.default_rng([int(i), 7]).normal() for i in batch["index"]]
            weight = (true + SELF_REPORT_STD_KG * torch.tensor(noise)).float()
        x = NetInput(batch["front"], batch["side"], batch["stature"], sex, weight,
                     batch.get("front_parts"), batch.get("side_parts"))
        z = run_network(net, ckpt.spec.kind, ckpt.spec.view, to_device(x, device)).z
        preds.append(z.float().cpu().numpy() * std)
        trues.append(batch["coeffs"].numpy())
        sexes.append(batch["sex"].numpy())
        statures.append(batch["stature"].numpy())
        for r in range(len(z)):
            items.append({k: batch[k][r].numpy() for k in (
                "pose_angles", "yaw", "canvas_K", "camera_R", "camera_t", "front", "side",
                "garments")})
        if limit is not None and sum(len(p) for p in preds) >= limit:
            break
    net.cpu()
    n = sum(len(p) for p in preds) if limit is None else min(limit, sum(len(p) for p in preds))
    return Predictions(np.concatenate(preds)[:n], np.concatenate(trues)[:n],
                       np.concatenate(sexes)[:n], np.concatenate(statures)[:n], items[:n])


def reprojection_iou(body: BodyModel, rest: np.ndarray, items: list[dict]) -> np.ndarray:
    """(N, 2) exact IoU of rest meshes (N, V, 3) posed and seen like their samples, against
    the samples' stored canvases (front, side)."""
    angles = np.stack([it["pose_angles"] for it in items]).astype(np.float64)  # (N, 2, P)
    rest = rest.astype(np.float64)
    out = np.zeros((len(items), 2))
    for v, name in enumerate(("front", "side")):
        posed = body.pose(rest, angles[:, v])  # each view has its own pose
        for i, it in enumerate(items):
            target = it[name][0] >= 0.5
            h, w = target.shape
            # The dataset streams float32 cameras: restore an exact rotation.
            u, _, vt = np.linalg.svd(it["camera_R"][v].astype(np.float64))
            cam = Camera(it["canvas_K"][v].astype(np.float64), u @ vt,
                         it["camera_t"][v].astype(np.float64), w, h)
            sil = silhouette(body.turn(posed[i], float(it["yaw"][v])), body.faces, cam,
                             closed=True)
            out[i, v] = mask_iou(sil, target)
    return out


def metrics(pred: Predictions, body: BodyModel, v_pred: np.ndarray | None = None
            ) -> dict[str, np.ndarray]:
    """Per-sample metric arrays (N,) named ``METRICS``, plus ``bmi`` and ``sex``.

    ``v_pred`` (N, V, 3) overrides the decoded predictions (for baselines)."""
    if v_pred is None:
        v_pred = body.shape.decode(pred.coeffs_pred.astype(np.float64))
    v_true = body.shape.decode(pred.coeffs_true.astype(np.float64))
    a, b = body_stats(v_pred, body.template), body_stats(v_true, body.template)
    iou = reprojection_iou(body, v_pred, pred.items)
    return {
        "vertex_mm": np.linalg.norm(v_pred - v_true, axis=-1).mean(axis=-1) * 1e3,
        "stature_mm": np.abs(a.stature - b.stature) * 1e3,
        "chest_mm": np.abs(a.chest - b.chest) * 1e3,
        "waist_mm": np.abs(a.waist - b.waist) * 1e3,
        "hip_mm": np.abs(a.hip - b.hip) * 1e3,
        "iou_front": iou[:, 0], "iou_side": iou[:, 1],
        "bmi": b.volume * DENSITY_KG_M3 / b.stature ** 2,
        "sex": pred.sex,
        "garments": np.stack([it["garments"] for it in pred.items]).reshape(-1, 4),
    }


def height_only(model: ShapeModel, stature: np.ndarray) -> np.ndarray:
    """The height-only baseline: the mean body scaled about its centroid to each stature.

    Args:
        stature: (N,) meters.
    Returns:
        (N, V, 3) meters.
    """
    mean = model.mean.astype(np.float64)
    centre = mean.mean(axis=0)
    s = np.asarray(stature, np.float64) / np.ptp(mean[:, 2])
    return centre + s[:, None, None] * (mean - centre)


def summarize(per_sample: dict[str, np.ndarray]) -> dict:
    """Means of ``METRICS`` over all samples, per sex, per BMI band and, for dressed test
    sets, per kind of top and bottom (with counts)."""
    def block(mask: np.ndarray) -> dict:
        d = {m: float(per_sample[m][mask].mean()) for m in METRICS} if mask.any() else {}
        d["n"] = int(mask.sum())
        return d

    n = len(per_sample["vertex_mm"])
    out = {"all": block(np.ones(n, bool)), "by_sex": {}, "by_bmi": {}}
    for code, name in SEX_NAMES.items():
        mask = per_sample["sex"] == code
        if mask.any():
            out["by_sex"][name] = block(mask)
    for lo, hi, name in BMI_BANDS:
        mask = (per_sample["bmi"] >= lo) & (per_sample["bmi"] < hi)
        if mask.any():
            out["by_bmi"][name] = block(mask)
    outfits = per_sample.get("garments")
    if outfits is not None and (outfits >= 0).any():
        out["by_outfit"] = {}
        for j, layer in enumerate(GARMENT_LAYERS[:2]):
            for code, kind in enumerate(GARMENT_KINDS[layer]):
                mask = outfits[:, j] == code
                if mask.any():
                    out["by_outfit"][f"{layer}: {kind}"] = block(mask)
    return out


def evaluate(ckpt: Checkpoint, root: str | os.PathLike, body: BodyModel,
             limit: int | None = None, sex_known: bool = True, baseline: bool = False,
             augment: Augment | None = None, weight_known: bool = False,
             device: torch.device | str = "cpu") -> dict:
    """The full report (``summarize``) of a checkpoint on a held-out set; with
    ``baseline`` also the height-only baseline's under ``report["height_only"]``;
    ``augment``, ``weight_known``: see ``predict_dataset``. Under torchrun each process
    evaluates its shards and every process returns the report of the whole set."""
    job = current_job()
    if job.world > 1 and (limit is not None or ShardDataset(root).config["n_shards"]
                          < job.world):
        raise ValueError(f"several processes need no --limit and at least {job.world} "
                         "shards in the test set; evaluate it in one process")
    pred = predict_dataset(ckpt, root, body.shape, limit, sex_known=sex_known, augment=augment,
                           weight_known=weight_known, faces=body.faces, device=device,
                           rank=job.rank, world_size=job.world)
    report = summarize(job.gather(metrics(pred, body)))
    if baseline:
        report["height_only"] = summarize(job.gather(metrics(
            pred, body, height_only(body.shape, pred.stature))))
    report["checkpoint"] = str(ckpt.path) if ckpt.path else None
    report["data"] = str(Path(root))
    report["sex_known"] = sex_known
    report["weight_known"] = weight_known
    report["augment"] = None if augment is None else dataclasses.asdict(augment)
    return report


def markdown(report: dict) -> str:
    """A markdown table of a report: one row per group (all, each sex, each BMI band)."""
    head = ["group", "n", "vertex mm", "stature mm", "chest mm", "waist mm", "hip mm",
            "IoU front", "IoU side"]
    rows = [("all", report["all"])]
    rows += [(f"sex: {k}", v) for k, v in report["by_sex"].items()]
    rows += [(f"BMI {k}", v) for k, v in report["by_bmi"].items()]
    rows += list(report.get("by_outfit", {}).items())
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, d in rows:
        cells = [name, str(d["n"])] + [f"{d[m]:.1f}" for m in METRICS[:5]] + \
            [f"{d[m]:.3f}" for m in METRICS[5:]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
