"""A dataset made by the tasks of a cluster job array, and the merge of their parts.

Every task of an array runs the same ``bodyshape synth`` command into one shared folder;
without ``--shard-index``/``--num-shards``, :func:`array_part` reads the task's part from
Slurm's variables: part ``(SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN) /
SLURM_ARRAY_TASK_STEP`` of ``SLURM_ARRAY_TASK_COUNT`` (so ``--array=1-8`` works as well as
``--array=0-7``). Part i makes shards ``i, i + n, ...`` (``write_dataset``), and its bytes
never depend on the split, so the merged folder equals a single run's.

:func:`merge` (``bodyshape synth merge DIR``) checks the parts and writes ``manifest.json``:
every part made with the folder's config, no shard recorded twice with different bytes, no
shard missing (naming the parts to rerun), none foreign, every shard's bytes as recorded.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bodyshape.dataset.shard_format import (
    CONFIG_NAME,
    ShardError,
    recorded_hashes,
    shard_name,
)
from bodyshape.synth.shards import finalize

logger = logging.getLogger(__name__)

TASK_ID, TASK_COUNT = "SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT"
TASK_MIN, TASK_STEP = "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_STEP"
_PART = re.compile(r"manifest\.part-(\d+)-of-(\d+)\.json")


@dataclass(frozen=True)
class ArrayPart:
    """This task's part of a job array: ``index`` in 0..count-1, ``count`` parts; ``task``
    the scheduler's task id it came from."""

    index: int
    count: int
    task: int


def array_part(environ: Mapping[str, str] | None = None) -> ArrayPart | None:
    """The part a Slurm array task makes (module docs), or None outside an array.

    Raises:
        ValueError: the array variables are incomplete, not integers, or inconsistent.
    """
    env = os.environ if environ is None else environ
    if TASK_ID not in env:
        return None
    try:
        task, count = int(env[TASK_ID]), int(env[TASK_COUNT])
        first, step = int(env.get(TASK_MIN, "0")), int(env.get(TASK_STEP, "1"))
    except KeyError as exc:
        raise ValueError(f"{TASK_ID} is set but {exc.args[0]} is not; give --shard-index "
                         "and --num-shards") from None
    except ValueError:
        raise ValueError(f"the Slurm array variables are not integers ({TASK_ID}="
                         f"{env.get(TASK_ID)!r}, {TASK_COUNT}={env.get(TASK_COUNT)!r})") from None
    offset = task - first
    if count < 1 or step < 1 or offset % step or not 0 <= offset // step < count:
        raise ValueError(f"array task {task} is not one of {count} tasks from {first} in "
                         f"steps of {step}; use --array=0-{max(count, 1) - 1} or give "
                         "--shard-index and --num-shards")
    return ArrayPart(offset // step, count, task)


@dataclass(frozen=True)
class Merged:
    """A merged dataset: ``manifest`` path, ``shards`` count, ``parts`` (the part manifests
    found, by name)."""

    manifest: Path
    shards: int
    parts: tuple[str, ...]


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ShardError(f"{path}: unreadable ({exc})") from exc


def _rerun_hint(missing: list[int], splits: set[int]) -> str:
    """Which parts to rerun for the missing shard numbers, per split found in the folder."""
    hints = []
    for n in sorted(splits):
        parts = sorted({k % n for k in missing})
        hints.append(f"part{'s' * (len(parts) > 1)} {', '.join(map(str, parts))} of {n}")
    return "rerun " + " or ".join(hints) if hints else "no part manifest found: run synth"


def merge(out: str | os.PathLike) -> Merged:
    """Check the parts written into ``out`` and write its ``manifest.json`` (module docs).

    Raises:
        ValueError: not a synth folder, a part of another dataset, a foreign or missing shard.
        ShardError: a shard recorded twice with different hashes, or whose bytes differ
            from its record.
    """
    out = Path(out)
    if not (out / CONFIG_NAME).is_file():
        raise ValueError(f"{out} holds no {CONFIG_NAME}: not a bodyshape synth folder")
    config = _read_json(out / CONFIG_NAME)
    parts = sorted(p for p in out.glob("manifest.part-*.json") if _PART.fullmatch(p.name))
    splits = set()
    for path in parts:
        other = _read_json(path).get("config")
        if other != config:
            diff = sorted(k for k in set(config) | set(other or {})
                          if config.get(k) != (other or {}).get(k))
            raise ValueError(f"{path} belongs to another dataset (differs in: "
                             f"{', '.join(diff)}); move it and its shards out of {out}")
        splits.add(int(_PART.fullmatch(path.name)[2]))
    if len(splits) > 1:
        logger.info("%s: parts of %s splits; their shards agree byte for byte", out,
                    sorted(splits))
    hashes = recorded_hashes(out)  # a shard recorded with two hashes is an error
    names = [shard_name(k) for k in range(config["n_shards"])]
    foreign = sorted((set(hashes) | {p.name for p in out.glob("shard-*.npz")}) - set(names))
    if foreign:
        raise ValueError(f"{out / foreign[0]} is not one of the {len(names)} shards of this "
                         f"dataset ({len(foreign)} such files); remove them")
    missing = [k for k, nm in enumerate(names) if nm not in hashes or not (out / nm).is_file()]
    if missing:
        shown = ", ".join(names[k] for k in missing[:3]) + (", ..." if len(missing) > 3 else "")
        raise ValueError(f"{out}: {len(missing)} of {len(names)} shards missing ({shown}); "
                         f"{_rerun_hint(missing, splits)}")
    manifest = finalize(out)  # re-hashes every shard against its record
    if manifest is None:  # a shard vanished since the check above
        raise ValueError(f"{out}: shards went missing while merging; merge again")
    return Merged(manifest, len(names), tuple(p.name for p in parts))
