"""The on-disk format of a synthetic dataset: file names, shard files and manifests.

Layout of a dataset folder ``DIR`` (written by :mod:`bodyshape.synth.shards`)::

    DIR/config.json                     the generating config (written first, by every part)
    DIR/shard-00000.npz ...             S samples each (the last one may be shorter)
    DIR/manifest.part-{i}-of-{n}.json   per part: config + sha256 of the shards it made
    DIR/manifest.json                   config + sha256 of every shard (once all exist)

Shard file (an uncompressed ``.npz``; S samples, views ordered ``VIEWS = (front, side)``):

- ``index`` (S,) int64 global sample indices; ``shape_index`` (S,) int64;
- ``coeffs`` (S, K) float32 shape coefficients (meters); ``pose_angles`` (S, 2, P) float32
  radians (``POSE_NAMES``) of each view; ``yaw`` (S, 2) float32 radians; ``stature`` (S,)
  float32 m; ``sex`` (S,) int8 (0 female, 1 male, -1 unknown); ``side_mirrored`` (S,) bool;
  ``garments`` (S, 4) int8 outfit kind codes (``GARMENT_LAYERS``, ``GARMENT_KINDS``; -1 naked);
  ``keypoints`` (S, 2, K, 2) float32 canvas pixels of each view's body keypoints
  (``body.keypoints.KEYPOINT_NAMES``), what ``parts.part_labels`` labels the masks with;
- cameras per view: ``camera_K`` (S, 2, 3, 3), ``camera_R`` (S, 2, 3, 3), ``camera_t``
  (S, 2, 3) float64, ``camera_size`` (S, 2, 2) int32 (width, height) of the full frame;
- calibration per view: ``calib_scale`` (S, 2) float64 canvas px per frame px and
  ``calib_offset`` (S, 2, 2) float64: ``canvas = offset + scale * (x, y)``, with x negated
  for the mirrored side views (``side_mirrored``); :meth:`ShardData.canvas_camera` folds
  both into a camera that projects straight onto the canvas;
- ``masks``: ``mask_format="packed"`` (default): the calibrated masks thresholded at
  ``>= 0.5`` and bit-packed along the width, ``np.packbits(m >= 0.5, axis=-1)``, (S, 2, H,
  ceil(W/8)) uint8; ``"uint8"``: ``round(255 * m)`` (S, 2, H, W) uint8, keeping the
  anti-aliased coverage. :func:`read_shard` returns both as (S, 2, H, W) uint8 in 0..255.

The ``.npz`` is written by hand (:func:`write_npz`) with fixed zip timestamps (``np.savez``
stamps the current time), so a shard's bytes depend only on its content. :func:`read_shard`
checks a shard against the sha256 recorded in the manifests beside it
(:func:`recorded_hashes`). Shards of format 2 (one ``pose_angles`` row (S, P) for both
views, no ``garments``, no ``keypoints``) are read as format 3: the pose repeated per view,
garments -1, keypoints NaN (any shard without keypoints reads with NaN keypoints).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bodyshape.body.keypoints import KEYPOINT_NAMES
from bodyshape.render.camera import Camera

#: The outfit codes of ``garments`` (S, 4): per layer, an index into its kinds (-1 naked).
GARMENT_LAYERS = ("top", "bottom", "hair", "shoes")
GARMENT_KINDS = {
    "top": ("tight", "tshirt", "loose"),
    "bottom": ("leggings", "shorts", "trousers", "skirt"),
    "hair": ("short", "long", "bun", "ponytail"),
    "shoes": ("none", "shoes"),
}

FORMAT_VERSION = 3
"""Version of the dataset format, recorded in ``config.json``."""
VIEWS = ("front", "side")
MASK_FORMATS = ("packed", "uint8")
CONFIG_NAME = "config.json"
MANIFEST_NAME = "manifest.json"
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed zip member time: byte-identical files


class ShardError(ValueError):
    """A shard file is missing, truncated, corrupt or does not match its manifest."""


def shard_name(index: int) -> str:
    return f"shard-{index:05d}.npz"


def part_manifest_name(shard_index: int, num_shards: int) -> str:
    return f"manifest.part-{shard_index}-of-{num_shards}.json"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# --------------------------------------------------------------------------------------------
# One shard: build, write, read
# --------------------------------------------------------------------------------------------


def shard_arrays(samples: list, mask_format: str = "packed") -> dict[str, np.ndarray]:
    """Stack :class:`~bodyshape.synth.generate.Sample` s into the shard arrays (module docs)."""
    if mask_format not in MASK_FORMATS:
        raise ValueError(f"mask_format must be one of {MASK_FORMATS}, got {mask_format!r}")
    cams = [[s.front_camera, s.side_camera] for s in samples]
    masks = np.stack([np.stack([s.front, s.side]) for s in samples])  # (S, 2, H, W) float32
    if mask_format == "packed":
        masks = np.packbits(masks >= 0.5, axis=-1)
    else:
        masks = np.round(masks * 255.0).astype(np.uint8)
    return {
        "index": np.array([s.index for s in samples], dtype=np.int64),
        "shape_index": np.array([s.shape_index for s in samples], dtype=np.int64),
        "coeffs": np.stack([s.coeffs for s in samples]).astype(np.float32),
        "pose_angles": np.stack([s.pose_angles for s in samples]).astype(np.float32),
        "yaw": np.stack([s.yaw for s in samples]).astype(np.float32),
        "garments": np.stack([s.garments for s in samples]).astype(np.int8),
        "keypoints": np.stack([s.keypoints for s in samples]).astype(np.float32),
        "stature": np.array([s.stature_m for s in samples], dtype=np.float32),
        "sex": np.array([s.sex_code for s in samples], dtype=np.int8),
        "side_mirrored": np.array([s.side_mirrored for s in samples], dtype=bool),
        "camera_K": np.array([[c["K"] for c in v] for v in cams], dtype=np.float64),
        "camera_R": np.array([[c["R"] for c in v] for v in cams], dtype=np.float64),
        "camera_t": np.array([[c["t"] for c in v] for v in cams], dtype=np.float64),
        "camera_size": np.array([[[c["width"], c["height"]] for c in v] for v in cams],
                                dtype=np.int32),
        "calib_scale": np.stack([s.calib_scale for s in samples]).astype(np.float64),
        "calib_offset": np.stack([s.calib_offset for s in samples]).astype(np.float64),
        "masks": np.ascontiguousarray(masks),
    }


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write an uncompressed ``.npz`` with fixed member timestamps (deterministic bytes)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for name in sorted(arrays):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arrays[name]),
                                      allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_DATE)
            info.external_attr = 0o600 << 16
            zf.writestr(info, buf.getvalue())


@dataclass(frozen=True, eq=False)
class ShardData:
    """The decoded content of one shard (S samples, views ``VIEWS``; see module docs).

    Attributes:
        path: the shard file.
        index, shape_index: (S,) int64.
        coeffs: (S, K) float32 meters. pose_angles: (S, 2, P) float32 radians per view.
        yaw: (S, 2) float32 radians. stature: (S,) float32 meters.
        sex: (S,) int8 codes (0 female, 1 male, -1 unknown). side_mirrored: (S,) bool.
        camera_K, camera_R: (S, 2, 3, 3) float64; camera_t: (S, 2, 3) float64 meters;
        camera_size: (S, 2, 2) int32 (width, height) pixels.
        calib_scale: (S, 2) float64; calib_offset: (S, 2, 2) float64 (module docs).
        masks: (S, 2, H, W) uint8 in 0..255 (``/ 255`` gives the calibrated image).
        garments: (S, 4) int8 outfit codes, -1 naked.
        keypoints: (S, 2, K, 2) float32 canvas pixels per view, NaN when unknown.
    """

    path: Path
    index: np.ndarray
    shape_index: np.ndarray
    coeffs: np.ndarray
    pose_angles: np.ndarray
    yaw: np.ndarray
    stature: np.ndarray
    sex: np.ndarray
    side_mirrored: np.ndarray
    camera_K: np.ndarray
    camera_R: np.ndarray
    camera_t: np.ndarray
    camera_size: np.ndarray
    calib_scale: np.ndarray
    calib_offset: np.ndarray
    masks: np.ndarray
    garments: np.ndarray
    keypoints: np.ndarray

    def __len__(self) -> int:
        return len(self.index)

    def camera(self, i: int, view: str) -> Camera:
        """The full-frame camera of sample row ``i`` and view "front"/"side"."""
        v = VIEWS.index(view)
        w, h = (int(x) for x in self.camera_size[i, v])
        return Camera(self.camera_K[i, v], self.camera_R[i, v], self.camera_t[i, v], w, h)

    def canvas_intrinsics(self) -> np.ndarray:
        """(S, 2, 3, 3) intrinsics that project straight onto the network canvas: the frame
        intrinsics composed with each view's calibration (scale, offset, mirror)."""
        s = self.calib_scale
        sx = np.where(np.stack([np.zeros_like(self.side_mirrored), self.side_mirrored], 1),
                      -s, s)
        a = np.zeros(s.shape + (3, 3))
        a[..., 0, 0], a[..., 1, 1], a[..., 2, 2] = sx, s, 1.0
        a[..., :2, 2] = self.calib_offset
        return a @ self.camera_K

    def canvas_camera(self, i: int, view: str) -> Camera:
        """The camera of sample row ``i``'s view composed with its calibration: it projects
        the posed, yawed body straight onto the (H, W) network canvas, mirror included."""
        v = VIEWS.index(view)
        h, w = self.masks.shape[-2:]
        return Camera(self.canvas_intrinsics()[i, v], self.camera_R[i, v],
                      self.camera_t[i, v], w, h)


def recorded_hashes(root: Path) -> dict[str, str]:
    """Shard name -> sha256 from ``manifest.json`` and every part manifest in ``root``.

    Raises:
        ShardError: if two manifests disagree on a shard's hash.
    """
    hashes: dict[str, str] = {}
    for path in sorted(root.glob("manifest*.json")):
        try:
            shards = json.loads(path.read_text())["shards"]
        except (OSError, ValueError, KeyError) as exc:
            raise ShardError(f"{path}: unreadable manifest ({exc})") from exc
        for name, digest in shards.items():
            if hashes.setdefault(name, digest) != digest:
                raise ShardError(f"{path}: hash of {name} disagrees with another manifest")
    return hashes


def read_shard(path: str | os.PathLike, verify: bool = True, canvas: tuple[int, int] | None
               = None) -> ShardData:
    """Read one shard, checking its sha256 against the folder's manifests.

    Args:
        path: the ``shard-*.npz`` file.
        verify: check the hash (recomputed from the bytes) against the hash recorded in
            ``manifest.json`` or a part manifest beside it.
        canvas: (H, W) of the masks; read from ``config.json`` beside the shard when None.

    Raises:
        ShardError: naming the file, if it is missing, unhashed, truncated or corrupt.
    """
    path = Path(path)
    if not path.is_file():
        raise ShardError(f"{path}: shard file not found")
    if verify:
        expected = recorded_hashes(path.parent).get(path.name)
        if expected is None:
            raise ShardError(f"{path}: no hash recorded in any manifest (incomplete dataset?)")
        if sha256_file(path) != expected:
            raise ShardError(f"{path}: sha256 mismatch, the file is corrupt or truncated; "
                             "delete it and rerun the same synth command to regenerate it")
    try:
        with np.load(path, allow_pickle=False) as z:
            d = {k: z[k] for k in z.files}
        if canvas is None:
            canvas = tuple(json.loads((path.parent / CONFIG_NAME).read_text())["canvas"])
        h, w = canvas
        if d["masks"].shape[-1] != w:  # packed: ceil(W / 8) bytes per row
            masks = np.unpackbits(d.pop("masks"), axis=-1, count=w) * np.uint8(255)
        else:
            masks = d.pop("masks")
        if masks.shape[1:] != (2, h, w):
            raise ValueError(f"masks have shape {masks.shape}, expected (S, 2, {h}, {w})")
        if d["pose_angles"].ndim == 2:  # format 2: one pose for both views, naked
            d["pose_angles"] = np.repeat(d["pose_angles"][:, None], 2, axis=1)
        d.setdefault("garments", np.full((len(masks), 4), -1, np.int8))
        d.setdefault("keypoints", np.full((len(masks), 2, len(KEYPOINT_NAMES), 2), np.nan,
                                          np.float32))
        return ShardData(path=path, masks=masks, **d)
    except ShardError:
        raise
    except Exception as exc:  # zip/npy/json errors: name the file, keep the cause
        raise ShardError(f"{path}: cannot read shard ({type(exc).__name__}: {exc})") from exc
