"""Streaming a sharded synthetic dataset into PyTorch, with optional mask augmentation.

:class:`ShardDataset` is an ``IterableDataset`` over the shards listed in a finished
dataset's ``manifest.json`` (written by :mod:`bodyshape.synth.shards`): shards are dealt
round-robin to the ranks of a distributed job (``rank``, ``world_size``; rank r takes shards
r, r + W, ...), then to each rank's DataLoader workers (``get_worker_info``), so every
sample is yielded exactly once per epoch across the job whatever ``num_workers`` is. Shuffling (shard order and sample order within
a shard) and augmentation draw only from generators seeded by ``(seed, epoch, ...)``: call
:meth:`ShardDataset.set_epoch` before each epoch (with ``persistent_workers=False``) for a
new order.

Held-out test split: a fixed test set is simply a dataset generated with its own seed, e.g.
``bodyshape synth --n 2000 --seed 999 --out test``; its ground-truth canonical (rest-pose)
meshes are ``model.decode(coeffs)`` with the same shape model (checked via the manifest's
``shape_model_hash``). See :func:`held_out_split`.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from bodyshape.dataset.shard_format import MANIFEST_NAME, ShardData, ShardError, read_shard
from bodyshape.parts import part_labels

logger = logging.getLogger(__name__)

MEASURED_NAME = "segmentation_augment.json"


# --------------------------------------------------------------------------------------------
# Augmentation
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Augment:
    """Random corruptions of a calibrated mask, mimicking segmentation errors and clothing.

    Sizes are in pixels of a ``reference_height``-pixel canvas: other canvases are resized
    to that height (linear), augmented and resized back (area average), so an operation is
    equally strong on every canvas. Each operation is applied independently with its
    probability. Binary input masks (bit-packed datasets) give binary outputs.

    Attributes:
        p_jitter: probability of boundary jitter: a smooth random displacement field.
        jitter_px: its amplitude (std of each displacement component), pixels.
        jitter_smooth_px: spatial smoothness (Gaussian sigma) of that field, pixels.
        p_morph: probability of an erosion or a dilation (50/50).
        morph_max_px: the elliptic kernel has a random size in 2..morph_max_px pixels.
        p_holes: probability of punching small holes inside the body.
        p_blobs: probability of adding small blobs just outside the boundary.
        max_spots: up to this many holes (and, separately, blobs).
        spot_radius_px: (lo, hi) radius of holes and blobs, pixels.
        p_bulge: probability of loose-clothing bulges.
        max_bulges: up to this many bulges.
        bulge_length_px: (lo, hi) half-length of a bulge along the boundary, pixels.
        bulge_depth_px: (lo, hi) outward thickness of a bulge, pixels.
        offset_px: (mean, std) of a signed boundary offset drawn per mask (positive grows
            the mask), applied through the signed distance to the boundary; (0, 0) is off.
        reference_height: canvas height the pixel sizes above refer to.

    ``Augment()`` is the generic augmentation training has used; ``Augment.measured()`` is
    fitted to MediaPipe's errors measured on photos of synthetic bodies
    (``benchmarks/bench_segmentation.py``).
    """

    p_jitter: float = 0.5
    jitter_px: float = 0.7
    jitter_smooth_px: float = 4.0
    p_morph: float = 0.5
    morph_max_px: int = 3
    p_holes: float = 0.2
    p_blobs: float = 0.3
    max_spots: int = 3
    spot_radius_px: tuple[float, float] = (0.7, 2.0)
    p_bulge: float = 0.5
    max_bulges: int = 3
    bulge_length_px: tuple[float, float] = (4.0, 12.0)
    bulge_depth_px: tuple[float, float] = (1.0, 3.0)
    offset_px: tuple[float, float] = (0.0, 0.0)
    reference_height: int = 128

    @classmethod
    def measured(cls, path: str | os.PathLike | None = None) -> "Augment":
        """The augmentation fitted to measured segmentation errors: the parameters written by
        ``benchmarks/bench_segmentation.py --write`` (``dataset/data/segmentation_augment.json``
        unless ``path``)."""
        if path is None:
            ref = resources.files("bodyshape.dataset").joinpath("data", MEASURED_NAME)
            text = ref.read_text() if ref.is_file() else None
        else:
            text = Path(path).read_text()
        if text is None:
            raise FileNotFoundError(f"dataset/data/{MEASURED_NAME} is missing; run "
                                    "benchmarks/bench_segmentation.py --write")
        fields = json.loads(text)["augment"]
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Augment one (H, W) float32 mask in [0, 1] -> (H, W) float32 in [0, 1]."""
        return augment_mask(image, rng, self)


def _boundary_points(binary: np.ndarray) -> np.ndarray:
    """(N, 2) (x, y) foreground pixels with a background 4-neighbour."""
    inner = cv2.erode(binary, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_CONSTANT,
                      borderValue=0)
    ys, xs = np.nonzero(binary & ~inner)
    return np.stack([xs, ys], axis=1)


def augment_mask(image: np.ndarray, rng: np.random.Generator, aug: Augment = Augment()
                 ) -> np.ndarray:
    """Apply :class:`Augment` to a calibrated mask with the generator ``rng``.

    Works on an 8-bit copy (0..255) so anti-aliased masks stay soft under jitter and
    morphology; holes, blobs and bulges are drawn fully off/on.

    Args:
        image: (H, W) float mask in [0, 1].
        rng: the only source of randomness (a fixed number of decisions per call).
        aug: the augmentation parameters.

    Returns:
        (H, W) float32 in [0, 1].
    """
    image = np.asarray(image, np.float32)
    h, w = image.shape
    binary_input = bool(np.all((image == 0) | (image == 1)))
    # Work at the reference resolution so that the pixel sizes mean the same thing on every
    # canvas (a 1-px erosion at 64 px would be twice as strong as at 128 px).
    work = image
    if h != aug.reference_height:
        work_w = max(1, int(round(w * aug.reference_height / h)))
        work = cv2.resize(image, (work_w, aug.reference_height), interpolation=cv2.INTER_LINEAR)
    out = _augment_reference(work, rng, aug)
    if out.shape != (h, w):
        out = cv2.resize(out, (w, h), interpolation=cv2.INTER_AREA)
    if binary_input:  # bit-packed datasets stay binary
        out = (out >= 0.5).astype(np.float32)
    return np.clip(out, 0.0, 1.0)


def _augment_reference(image: np.ndarray, rng: np.random.Generator, aug: Augment
                       ) -> np.ndarray:
    """``augment_mask`` at the reference resolution: (h, w) float32 -> (h, w) float32."""
    h, w = image.shape
    img = np.clip(np.round(image * 255.0), 0, 255).astype(np.uint8)
    flags = rng.random(5)  # one decision per operation, always drawn: fixed stream layout

    if flags[0] < aug.p_jitter and aug.jitter_px > 0:
        # Smooth displacement field: white noise blurred, renormalised to the wanted std.
        sigma = max(aug.jitter_smooth_px, 0.5)
        field = rng.standard_normal((2, h, w)).astype(np.float32)
        field = np.stack([cv2.GaussianBlur(f, (0, 0), sigma) for f in field])
        field *= aug.jitter_px / max(float(field.std()), 1e-6)
        gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        img = cv2.remap(img, gx + field[0], gy + field[1], cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_CONSTANT, borderValue=0)

    if flags[1] < aug.p_morph and aug.morph_max_px >= 2:
        size = int(rng.integers(2, aug.morph_max_px + 1))
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
        img = (cv2.erode if rng.random() < 0.5 else cv2.dilate)(img, kernel)

    binary = (img >= 128).astype(np.uint8)
    for flag, p, value, inside in ((flags[2], aug.p_holes, 0, True),
                                   (flags[3], aug.p_blobs, 255, False)):
        if flag >= p or not binary.any():
            continue
        # Holes go on interior pixels, blobs on the boundary (half of each blob is outside).
        if inside:
            pts = np.stack(np.nonzero(cv2.erode(binary, np.ones((5, 5), np.uint8)))[::-1], 1)
        else:
            pts = _boundary_points(binary)
        if len(pts) == 0:
            continue
        for _ in range(int(rng.integers(1, aug.max_spots + 1))):
            x, y = pts[rng.integers(len(pts))]
            r = max(1, int(round(rng.uniform(*aug.spot_radius_px))))
            cv2.circle(img, (int(x), int(y)), r, value, thickness=-1)

    if flags[4] < aug.p_bulge and binary.any():
        pts = _boundary_points(binary)
        # Outward normal from the gradient of a blurred mask (it points into the body).
        soft = cv2.GaussianBlur(binary.astype(np.float32), (0, 0), 2.0)
        gy, gx = np.gradient(soft)
        for _ in range(int(rng.integers(1, aug.max_bulges + 1))):
            x, y = pts[rng.integers(len(pts))]
            normal = -np.array([gx[y, x], gy[y, x]])
            norm = np.linalg.norm(normal)
            if norm < 1e-6:
                continue
            normal /= norm
            length = rng.uniform(*aug.bulge_length_px)
            depth = rng.uniform(*aug.bulge_depth_px)
            # A half-ellipse outside the boundary: an ellipse centred on the boundary point,
            # long axis along the tangent, unioned with the mask (the inner half is body).
            angle = float(np.degrees(np.arctan2(normal[0], -normal[1])))  # tangent direction
            cv2.ellipse(img, (int(x), int(y)), (max(1, int(round(length))),
                        max(1, int(round(depth)))), angle, 0, 360, 255, thickness=-1)

    mean, std = aug.offset_px
    if mean != 0.0 or std != 0.0:  # drawn only when on: the generic stream is unchanged
        img = _offset(img, float(mean + std * rng.standard_normal()))
    return img.astype(np.float32) / 255.0


def _offset(img: np.ndarray, px: float, up: int = 4) -> np.ndarray:
    """Move the boundary of an 8-bit mask outward by ``px`` (inward if negative), keeping
    sub-pixel accuracy: the mask is upsampled ``up`` times (linear, so soft edges place the
    0.5 level between pixels), its signed distance to that level is shifted by ``px`` and
    clipped to a coverage, and the result is area-averaged back."""
    h, w = img.shape
    fine = cv2.resize(img, (w * up, h * up), interpolation=cv2.INTER_LINEAR) >= 128
    m = fine.astype(np.uint8)
    # Distances from pixel centres to the nearest pixel of the other side, minus half a
    # (fine) pixel: the boundary between the two sets sits at 0. Fine pixels -> canvas px.
    d_out = (cv2.distanceTransform(1 - m, cv2.DIST_L2, 5) - 0.5) / up
    d_in = (cv2.distanceTransform(m, cv2.DIST_L2, 5) - 0.5) / up
    signed = np.where(fine, d_in, -d_out)  # positive inside, canvas px
    cover = np.clip(0.5 + (signed + px) * up, 0.0, 1.0).astype(np.float32)
    out = cv2.resize(cover, (w, h), interpolation=cv2.INTER_AREA)
    return np.clip(np.round(out * 255.0), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------------------
# Dataset
# --------------------------------------------------------------------------------------------


def _manifest(root: Path) -> dict:
    path = root / MANIFEST_NAME
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: the dataset is incomplete (finish every part, then run "
            "bodyshape.synth.shards.finalize on the folder)")
    return json.loads(path.read_text())


class ShardDataset(IterableDataset):
    """Stream the samples of a finished sharded dataset as dicts of tensors.

    Each item: ``front``/``side`` (1, H, W) float32 in [0, 1]; ``coeffs`` (K,) float32 m;
    ``stature`` () float32 m; ``sex`` () int64 (0 female, 1 male, -1 unknown); ``index``
    () int64; ``pose_angles`` (2, P) float32 rad per view; ``yaw`` (2,) float32 rad;
    ``garments`` (4,) int64 outfit codes (-1 naked); ``keypoints`` (2, K, 2) float32 canvas
    px (NaN unknown); with ``parts=True`` also ``front_parts``/``side_parts`` (H, W) int64
    body-part labels of the (augmented) masks (``parts.part_labels``);
    ``side_mirrored`` () bool; ``camera_K``/``camera_R`` (2, 3, 3), ``camera_t`` (2, 3)
    float32, ``camera_size`` (2, 2) int64 (width, height) of the full frame; ``canvas_K``
    (2, 3, 3) float32 intrinsics that, with ``camera_R``/``camera_t``, project the posed
    and yawed body straight onto the canvas (``ShardData.canvas_intrinsics``); views (front,
    side).

    Args:
        root: dataset folder holding ``manifest.json``.
        shuffle: shuffle the shard order and the samples within each shard (per epoch).
        seed: seed of the shuffling and augmentation generators.
        augment: optional :class:`Augment`, applied to both views with a per-sample
            generator ``default_rng([seed, epoch, index, view])``.
        verify: check every shard's sha256 against the manifest when it is read.
        parts: also yield part label maps (the one routine predict uses on photos).
        rank, world_size: this process's share of a distributed job (``bodyshape.distributed``):
            it streams only shards ``rank::world_size`` of each epoch's shard order.
    """

    def __init__(self, root: str | os.PathLike, shuffle: bool = False, seed: int = 0,
                 augment: Augment | None = None, verify: bool = True, parts: bool = False,
                 rank: int = 0, world_size: int = 1):
        super().__init__()
        self.root = Path(root)
        manifest = _manifest(self.root)
        self.config = manifest["config"]
        self.shards = sorted(manifest["shards"])
        self.shuffle, self.seed, self.augment, self.verify = shuffle, int(seed), augment, verify
        self.parts = bool(parts)
        self.epoch = 0
        if not 0 <= rank < world_size:
            raise ValueError(f"need 0 <= rank < world_size, got {rank} and {world_size}")
        self.rank, self.world_size = int(rank), int(world_size)
        if self.parts and self.shards:
            # Shards written before keypoints were stored hold NaN keypoints: every label
            # would be background, and a part-aware network would silently learn nothing.
            first = read_shard(self.root / self.shards[0], verify=False)
            if not np.isfinite(first.keypoints).any():
                raise ShardError(f"{self.root} stores no body keypoints (made by an older "
                                 "bodyshape?); part labels need them: make it again with "
                                 "`bodyshape synth`")

    def __len__(self) -> int:
        return int(self.config["n"])

    def set_epoch(self, epoch: int) -> None:
        """Select the shuffling/augmentation stream of ``epoch``."""
        self.epoch = int(epoch)

    def shards_for(self, rank: int, world_size: int, worker: int, workers: int) -> list[str]:
        """Shard names streamed by DataLoader ``worker`` (of ``workers``) of ``rank`` (of
        ``world_size``) this epoch: the epoch's shard order (the same permutation in every
        process), dealt round-robin to ranks, then to their workers."""
        shards = list(self.shards)
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(len(shards))
            shards = [shards[i] for i in order]
        return shards[rank::world_size][worker::workers]

    def shard_length(self, name: str) -> int:
        """Samples in shard ``name`` (``shard-NNNNN.npz``), from the dataset config."""
        k, size = int(name[len("shard-"):-len(".npz")]), int(self.config["shard_size"])
        return max(0, min(size, len(self) - k * size))

    def _my_shards(self) -> list[str]:
        info = get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        return self.shards_for(self.rank, self.world_size, worker, workers)

    def _items(self, data: ShardData) -> Iterator[dict]:
        order = np.arange(len(data))
        canvas_k = data.canvas_intrinsics().astype(np.float32)
        if self.shuffle:
            first = int(data.index[0]) if len(data) else 0
            order = np.random.default_rng([self.seed, self.epoch, first, 1]).permutation(order)
        for r in order:
            masks = data.masks[r].astype(np.float32) / 255.0  # (2, H, W)
            index = int(data.index[r])
            if self.augment is not None:
                masks = np.stack([self.augment(m, np.random.default_rng(
                    [self.seed, self.epoch, index, v])) for v, m in enumerate(masks)])
            item = {
                "front": torch.from_numpy(masks[0][None].copy()),
                "side": torch.from_numpy(masks[1][None].copy()),
                "coeffs": torch.from_numpy(data.coeffs[r].copy()),
                "stature": torch.tensor(float(data.stature[r]), dtype=torch.float32),
                "sex": torch.tensor(int(data.sex[r]), dtype=torch.int64),
                "index": torch.tensor(index, dtype=torch.int64),
                "pose_angles": torch.from_numpy(data.pose_angles[r].copy()),
                "yaw": torch.from_numpy(data.yaw[r].copy()),
                "garments": torch.from_numpy(data.garments[r].astype(np.int64)),
                "side_mirrored": torch.tensor(bool(data.side_mirrored[r])),
                "camera_K": torch.from_numpy(data.camera_K[r].astype(np.float32)),
                "camera_R": torch.from_numpy(data.camera_R[r].astype(np.float32)),
                "camera_t": torch.from_numpy(data.camera_t[r].astype(np.float32)),
                "camera_size": torch.from_numpy(data.camera_size[r].astype(np.int64)),
                "canvas_K": torch.from_numpy(canvas_k[r]),
                "keypoints": torch.from_numpy(data.keypoints[r].copy()),
            }
            if self.parts:
                for v, view in enumerate(("front", "side")):
                    item[f"{view}_parts"] = torch.from_numpy(
                        part_labels(masks[v], data.keypoints[r, v]).astype(np.int64))
            yield item

    def __iter__(self) -> Iterator[dict]:
        canvas = tuple(self.config["canvas"])
        for name in self._my_shards():
            yield from self._items(read_shard(self.root / name, verify=self.verify,
                                              canvas=canvas))


def held_out_split(root: str | os.PathLike, model=None) -> tuple[ShardDataset, dict]:
    """Open a held-out test set (a dataset generated with its own seed) without shuffling
    or augmentation.

    Args:
        root: the test dataset folder.
        model: optional :class:`~bodyshape.shape.pca.ShapeModel`; checked against the
            dataset's ``shape_model_hash`` so that ``model.decode(coeffs)`` gives the
            ground-truth canonical meshes.

    Returns:
        (dataset, config).

    Raises:
        ValueError: if ``model`` is not the model the set was generated with.
    """
    ds = ShardDataset(root, shuffle=False, augment=None)
    if model is not None and model.model_hash != ds.config["shape_model_hash"]:
        raise ValueError(f"{root} was made with shape model {ds.config['shape_model_hash']}, "
                         f"not {model.model_hash}: decode(coeffs) would be wrong")
    return ds, ds.config
