"""Writing sharded, resumable, byte-deterministic synthetic datasets.

The folder layout and the shard file format are in :mod:`bodyshape.dataset.shard_format`.

Determinism: a shard's bytes depend only on (shape model, spec, seed, n, shard size, mask
format), never on the worker count, the machine split, or the run being resumed: every
sample is a pure function of its index (:func:`~bodyshape.synth.generate.make_sample`), and
the ``.npz`` is written with fixed zip timestamps
(:func:`~bodyshape.dataset.shard_format.write_npz`). Nothing on disk holds a timestamp.

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

import contextlib
import functools
import json
import logging
import math
import multiprocessing
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from bodyshape.body import POSE_NAMES, BodyModel
from bodyshape.body.keypoints import KEYPOINT_NAMES
from bodyshape.dataset.shard_format import (
    CONFIG_NAME,
    FORMAT_VERSION,
    MANIFEST_NAME,
    MASK_FORMATS,
    VIEWS,
    ShardError,
    part_manifest_name,
    recorded_hashes,
    sha256_file,
    shard_arrays,
    shard_name,
    write_npz,
)
from bodyshape.fileio import atomic_path, write_json
from bodyshape.shape.pca import ShapeModel
from bodyshape.synth.generate import SynthSpec, make_sample

logger = logging.getLogger(__name__)

DEFAULT_SHARD_SIZE = 1000
MAX_SAMPLES = 10**9  # a sanity bound on --n (a typo like 1e12), not a format limit


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
def _load_body(path: str) -> BodyModel:
    """The body model of a worker (loaded once per process and shape model)."""
    return BodyModel.load(path)


def _shard_len(k: int, n: int, shard_size: int) -> int:
    """Samples in shard ``k`` of an ``n``-sample dataset."""
    return max(0, min((k + 1) * shard_size, n) - k * shard_size)


def _init_worker() -> None:
    # One BLAS/OpenMP/torch thread per worker: W workers use W cores, and results cannot
    # depend on a thread count (some BLAS reductions are not bit-reproducible across thread
    # counts).
    from threadpoolctl import threadpool_limits
    threadpool_limits(1)
    torch.set_num_threads(1)


@contextlib.contextmanager
def _single_threaded():
    """The workers' single-threaded arithmetic, in this process (restored afterwards)."""
    from threadpoolctl import threadpool_limits
    threads = torch.get_num_threads()
    try:
        with threadpool_limits(1):
            torch.set_num_threads(1)
            yield
    finally:
        torch.set_num_threads(threads)


def _make_shard(job: tuple) -> tuple[str, str]:
    """Worker: generate and atomically write shard ``k`` -> (name, sha256)."""
    model_path, out, k, seed, spec_dict, n, shard_size, mask_format, model_hash = job
    body = _load_body(model_path)
    if body.shape.model_hash != model_hash:
        raise ValueError(f"{model_path} changed while generating (hash {body.shape.model_hash})")
    spec = SynthSpec.from_dict(spec_dict)
    samples = [make_sample(body, i, seed, spec)
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
    # coeffs, both views' pose angles, yaws and keypoints (float32); the outfit (int8)
    vectors = 4 * (config["n_components"] + 2 * len(config["pose_names"]) + 2
                   + 2 * 2 * len(KEYPOINT_NAMES)) + 4
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
    try:
        BodyModel.load(model)  # the rig and template must fit the model's topology
    except ValueError as exc:
        raise ValueError(f"{model_path}: {exc}") from None

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
            with _single_threaded():  # the same arithmetic as the workers
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
