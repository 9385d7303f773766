"""Sharded, resumable, byte-deterministic synthetic datasets on disk.

Layout of a dataset folder ``DIR``::

    DIR/config.json                     the generating config (written first, by every part)
    DIR/shard-00000.npz ...             S samples each (the last one may be shorter)
    DIR/manifest.part-{i}-of-{n}.json   per part: config + sha256 of the shards it made
    DIR/manifest.json                   config + sha256 of every shard (once all exist)

Determinism: a shard's bytes depend only on (shape model, spec, seed, n, shard size, mask
format), never on the worker count, the machine split, or the run being resumed: every
sample is a pure function of its index (:func:`~bodyshape.synth.generate.make_sample`), and
the ``.npz`` is written by hand with fixed zip timestamps (``np.savez`` stamps the current
time). Nothing on disk holds a timestamp.

Shard file (an uncompressed ``.npz``; S samples, views ordered ``VIEWS = (front, side)``):

- ``index`` (S,) int64 global sample indices; ``shape_index`` (S,) int64;
- ``coeffs`` (S, K) float32 shape coefficients (meters); ``pose_angles`` (S, P) float32
  radians (``POSE_NAMES``); ``yaw`` (S, 2) float32 radians; ``stature`` (S,) float32 m;
  ``sex`` (S,) int8 (0 female, 1 male, -1 unknown); ``side_mirrored`` (S,) bool;
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

Parts and merging: ``write_dataset(..., shard_index=i, num_shards=n)`` makes the shards
``i, i + n, i + 2n, ...`` (round-robin), so parts on several machines writing into one
(shared or later copied-together) folder produce exactly the shards of a single run.
Each part records the hashes of its shards in ``manifest.part-{i}-of-{n}.json`` (rewritten
after every finished shard). Whoever finds every shard present and hashed writes
``manifest.json`` (:func:`finalize`; rerun it by hand after copying parts together).

Resume: a rerun skips shards whose file exists and whose sha256 (recomputed) matches a
recorded hash; everything else is (re)written via a temporary name and an atomic rename, so
a killed run leaves no partial shard under a real name and loses or duplicates no sample.
Stray temporary files of the shards a run owns are removed.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import logging
import math
import multiprocessing
import os
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bodyshape.fileio import atomic_path, write_json
from bodyshape.render.camera import Camera
from bodyshape.shape.pca import ShapeModel
from bodyshape.shape.rig import load_rig
from bodyshape.synth.generate import SynthSpec, make_sample
from bodyshape.synth.poses import POSE_NAMES

logger = logging.getLogger(__name__)

FORMAT_VERSION = 2
VIEWS = ("front", "side")
MASK_FORMATS = ("packed", "uint8")
DEFAULT_SHARD_SIZE = 1000
CONFIG_NAME = "config.json"
MANIFEST_NAME = "manifest.json"
MAX_SAMPLES = 10**9  # a sanity bound on --n (a typo like 1e12), not a format limit
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
        coeffs: (S, K) float32 meters. pose_angles: (S, P) float32 radians.
        yaw: (S, 2) float32 radians. stature: (S,) float32 meters.
        sex: (S,) int8 codes (0 female, 1 male, -1 unknown). side_mirrored: (S,) bool.
        camera_K, camera_R: (S, 2, 3, 3) float64; camera_t: (S, 2, 3) float64 meters;
        camera_size: (S, 2, 2) int32 (width, height) pixels.
        calib_scale: (S, 2) float64; calib_offset: (S, 2, 2) float64 (module docs).
        masks: (S, 2, H, W) uint8 in 0..255 (``/ 255`` gives the calibrated image).
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
        return ShardData(path=path, masks=masks, **d)
    except ShardError:
        raise
    except Exception as exc:  # zip/npy/json errors: name the file, keep the cause
        raise ShardError(f"{path}: cannot read shard ({type(exc).__name__}: {exc})") from exc


# --------------------------------------------------------------------------------------------
# Dataset writing
# --------------------------------------------------------------------------------------------


def dataset_config(model: ShapeModel, n: int, seed: int, spec: SynthSpec, shard_size: int,
                   mask_format: str) -> dict[str, Any]:
    """The JSON config identifying a dataset (everything its bytes depend on)."""
    cal = spec.calibration
    return json.loads(json.dumps({
        "format_version": FORMAT_VERSION,
        "spec": spec.to_dict(),
        "shape_model_hash": model.model_hash,
        "n_components": model.n_components,
        "seed": int(seed),
        "n": int(n),
        "shard_size": int(shard_size),
        "n_shards": math.ceil(n / shard_size),
        "canvas": [cal.canvas_height, cal.canvas_width],
        "mask_format": mask_format,
        "views": list(VIEWS),
        "pose_names": list(POSE_NAMES),
    }))


@functools.lru_cache(maxsize=2)
def _load_model(path: str) -> ShapeModel:
    return ShapeModel.load(path)


def _shard_len(k: int, n: int, shard_size: int) -> int:
    """Samples in shard ``k`` of an ``n``-sample dataset."""
    return max(0, min((k + 1) * shard_size, n) - k * shard_size)


def _init_worker() -> None:
    # One BLAS/OpenMP thread per worker: W workers use W cores, and results cannot depend on
    # a thread count (some BLAS reductions are not bit-reproducible across thread counts).
    from threadpoolctl import threadpool_limits
    threadpool_limits(1)


def _make_shard(job: tuple) -> tuple[str, str]:
    """Worker: generate and atomically write shard ``k`` -> (name, sha256)."""
    model_path, out, k, seed, spec_dict, n, shard_size, mask_format, model_hash = job
    model = _load_model(model_path)
    if model.model_hash != model_hash:
        raise ValueError(f"{model_path} changed while generating (hash {model.model_hash})")
    spec = SynthSpec.from_dict(spec_dict)
    rig = load_rig()
    samples = [make_sample(model, rig, i, seed, spec)
               for i in range(k * shard_size, min((k + 1) * shard_size, n))]
    target = Path(out) / shard_name(k)
    with atomic_path(target) as tmp:
        write_npz(tmp, shard_arrays(samples, mask_format))
    return target.name, sha256_file(target)


def bytes_per_sample(config: dict) -> int:
    """Shard bytes per sample of a dataset config (arrays only; zip headers add ~1 KB per
    shard): the disk estimate checked before writing."""
    h, w = config["canvas"]
    masks = 2 * h * ((w + 7) // 8 if config["mask_format"] == "packed" else w)
    scalars = 8 + 8 + 4 + 1 + 1  # index, shape_index, stature, sex, side_mirrored
    vectors = 4 * (config["n_components"] + len(config["pose_names"]) + 2)
    cameras = 2 * 8 * (9 + 9 + 3 + 1 + 2) + 2 * 4 * 2  # K, R, t, calibration; sizes
    return masks + scalars + vectors + cameras


def _check_writable(out: Path, config: dict, n_todo_samples: int) -> None:
    """Fail early, before any work, if ``out`` cannot be written or the disk is too small."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ValueError(f"cannot write to {out}: {exc.strerror or exc}") from exc
    need = n_todo_samples * bytes_per_sample(config)
    free = shutil.disk_usage(out).free
    if need > free:
        raise ValueError(f"{out}: the dataset needs about {need / 1e9:.2f} GB, only "
                         f"{free / 1e9:.2f} GB free")


def _check_config(out: Path, config: dict) -> None:
    """Refuse to mix datasets: compare with ``config.json``/``manifest.json`` in ``out``."""
    for name in (CONFIG_NAME, MANIFEST_NAME):
        path = out / name
        if not path.exists():
            continue
        try:
            old = json.loads(path.read_text())
            old = old["config"] if name == MANIFEST_NAME else old
        except (OSError, ValueError, KeyError) as exc:
            raise ValueError(f"{path}: unreadable ({exc}); not overwriting {out}") from exc
        if old != config:
            diff = sorted(k for k in set(old) | set(config) if old.get(k) != config.get(k))
            raise ValueError(f"{out} holds a different dataset (differs in: {', '.join(diff)}); "
                             "refusing to overwrite it: use another --out or delete it")
    if not (out / CONFIG_NAME).exists() and any(out.glob("shard-*.npz")):
        raise ValueError(f"{out} has shard files but no {CONFIG_NAME}; refusing to mix")


def finalize(out: str | os.PathLike) -> Path | None:
    """Write ``manifest.json`` if every shard of the dataset in ``out`` exists and is hashed.

    Each shard's bytes are re-hashed and checked against the part manifests. Returns the
    manifest path, or None (logged) when some shards are still missing.

    Raises:
        ShardError: if a present shard does not match its recorded hash.
    """
    out = Path(out)
    config = json.loads((out / CONFIG_NAME).read_text())
    hashes = recorded_hashes(out)
    names = [shard_name(k) for k in range(config["n_shards"])]
    missing = [nm for nm in names if nm not in hashes or not (out / nm).is_file()]
    if missing:
        logger.info("%s: %d of %d shards not done yet; manifest.json not written", out,
                    len(missing), len(names))
        return None
    for nm in names:
        if sha256_file(out / nm) != hashes[nm]:
            raise ShardError(f"{out / nm}: sha256 mismatch with its part manifest")
    path = out / MANIFEST_NAME
    write_json(path, {"config": config, "shards": {nm: hashes[nm] for nm in names}})
    return path


def _check_args(n, seed, workers, shard_size, shard_index, num_shards, mask_format
                ) -> tuple[int, int]:
    """Validate ``write_dataset`` arguments -> (part, parts)."""
    if int(n) < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if int(n) > MAX_SAMPLES:
        raise ValueError(f"n = {n} is more than {MAX_SAMPLES:,} samples; split such a job "
                         "into several datasets")
    if int(seed) < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if int(workers) < 1 or int(shard_size) < 1:
        raise ValueError(f"workers and shard_size must be >= 1, got {workers}, {shard_size}")
    if (shard_index is None) != (num_shards is None):
        raise ValueError("give both shard_index and num_shards, or neither")
    part, parts = (0, 1) if shard_index is None else (int(shard_index), int(num_shards))
    if parts < 1 or not 0 <= part < parts:
        raise ValueError(f"need 0 <= shard_index < num_shards, got {part} and {parts}")
    if mask_format not in MASK_FORMATS:
        raise ValueError(f"mask_format must be one of {MASK_FORMATS}, got {mask_format!r}")
    return part, parts


def write_dataset(model_path: str | os.PathLike, out: str | os.PathLike, n: int, seed: int,
                  spec: SynthSpec = SynthSpec(), workers: int = 1,
                  shard_index: int | None = None, num_shards: int | None = None,
                  progress: bool = True, shard_size: int = DEFAULT_SHARD_SIZE,
                  mask_format: str = "packed") -> dict[str, Any]:
    """Generate (or resume) a sharded dataset, or this machine's part of it.

    Args:
        model_path: shape model ``.npz``.
        out: dataset folder (created).
        n: total number of samples (all parts together), >= 1.
        seed: dataset seed, >= 0 (use a separate seed for a held-out test set).
        spec: sample distribution.
        workers: processes (spawn), each single-threaded; output does not depend on it.
        shard_index, num_shards: make only shards ``shard_index::num_shards`` (both or none).
        progress: show a tqdm bar.
        shard_size: samples per shard S.
        mask_format: "packed" (1 bit per pixel, threshold 0.5) or "uint8" (coverage).

    Returns:
        Summary: {"written", "skipped", "shards" (this part's), "manifest" (path or None)}.

    Raises:
        ValueError: bad arguments, unreadable model, or ``out`` holding another dataset.
    """
    part, parts = _check_args(n, seed, workers, shard_size, shard_index, num_shards,
                              mask_format)
    model_path = Path(model_path).resolve()
    if not model_path.is_file():
        raise ValueError(f"shape model not found: {model_path}")
    try:
        model = ShapeModel.load(model_path)
    except Exception as exc:
        raise ValueError(f"cannot load shape model {model_path}: {exc}") from exc
    if load_rig().weights.shape[0] != model.n_vertices:
        raise ValueError(f"{model_path}: {model.n_vertices} vertices, the rig needs "
                         f"{load_rig().weights.shape[0]} (template topology)")

    out = Path(out)
    config = dataset_config(model, int(n), int(seed), spec, int(shard_size), mask_format)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} exists and is not a folder")
    if out.is_dir():
        _check_config(out, config)  # before anything is written into an existing folder
    mine = list(range(part, config["n_shards"], parts))
    _check_writable(out, config, sum(_shard_len(k, n, shard_size) for k in mine))
    write_json(out / CONFIG_NAME, config)  # identical bytes from every part

    # Stray temporaries of killed runs (only our own shards': other parts may be writing).
    for k in mine:
        for stray in out.glob(f".{Path(shard_name(k)).stem}.*.tmp.npz"):
            logger.info("removing stray temporary %s", stray)
            stray.unlink(missing_ok=True)
    known = recorded_hashes(out)
    part_path = out / part_manifest_name(part, parts)
    done: dict[str, str] = {}
    todo = []
    for k in mine:
        nm, path = shard_name(k), out / shard_name(k)
        if path.is_file() and nm in known and sha256_file(path) == known[nm]:
            done[nm] = known[nm]
        else:
            if path.exists():
                logger.warning("%s: unrecorded or corrupt, regenerating", path)
            todo.append(k)
    skipped = len(done)
    logger.info("%s: part %d/%d, %d shards to write, %d already done", out, part, parts,
                len(todo), skipped)

    def record(name: str, digest: str) -> None:
        done[name] = digest
        write_json(part_path, {"config": config, "shards": dict(sorted(done.items()))})

    jobs = [(str(model_path), str(out), k, int(seed), config["spec"], int(n), int(shard_size),
             mask_format, model.model_hash) for k in todo]
    from tqdm import tqdm
    sizes = {shard_name(k): _shard_len(k, n, shard_size) for k in mine}
    bar = tqdm(total=sum(sizes.values()), initial=sum(sizes[nm] for nm in done),
               disable=not progress, unit="sample", unit_scale=True, desc="synth",
               smoothing=0.05)
    try:
        if workers == 1 or len(jobs) <= 1:
            from threadpoolctl import threadpool_limits
            with threadpool_limits(1):  # same single-threaded arithmetic as the workers
                for job in jobs:
                    name, digest = _make_shard(job)
                    record(name, digest)
                    bar.update(sizes[name])
        else:
            ctx = multiprocessing.get_context("spawn")
            with ctx.Pool(min(workers, len(jobs)), initializer=_init_worker) as pool:
                for name, digest in pool.imap_unordered(_make_shard, jobs):
                    record(name, digest)
                    bar.update(sizes[name])
    finally:
        bar.close()
    if done:  # also when every shard was skipped (their hashes may come from another part)
        write_json(part_path, {"config": config, "shards": dict(sorted(done.items()))})
    manifest = finalize(out)
    return {"written": len(todo), "skipped": skipped, "shards": len(mine),
            "manifest": None if manifest is None else str(manifest)}
