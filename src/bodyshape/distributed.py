"""Training on several processes: torch.distributed, launched by ``torchrun``, with
DistributedDataParallel (DDP).

One process per GPU (or several CPU processes), on one node or many::

    torchrun --nproc-per-node 4 -m bodyshape train ...          # one node
    bodyshape train --nproc 4 ...                              # the same, wrapped
    torchrun --nnodes 2 --nproc-per-node 4 --rdzv-backend c10d \\
        --rdzv-endpoint HOST:29500 --rdzv-id RUN -m bodyshape train ...   # on each node

torchrun sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``;
:func:`init_job` reads them and joins the process group (nccl on CUDA, gloo on the CPU).
Without them (a plain ``bodyshape train``) the job is one process, no process group exists
and every method of :class:`Job` is the single-process behaviour.

What a job of W ranks means (docs/TRAINING.md, *Several processes*):

- ``batch_size`` is the **global** batch: each rank takes ``batch_size / W`` samples per
  step (W must divide it) and renders ``iou_samples / W`` of them (rounded up) for the
  re-projection loss. The learning rate belongs to the global batch, so a run on W
  processes takes the same steps as on one, at the same rates.
- Shards are dealt to ranks, then to each rank's DataLoader workers
  (``ShardDataset(rank=, world_size=)``): every sample is seen once per epoch.
- Every rank takes the same number of optimizer steps per epoch (:meth:`Job.plan`: the
  largest rank's batch count). A rank whose samples run out first repeats its last batch
  with weight 0, and each rank's loss is weighted by its share of the step's samples
  (``c_r W / N``), so DDP's gradient average is the mean gradient over the step's N samples
  even when ranks hold different numbers of samples.
- Rank 0 alone validates and writes checkpoints, history and plots; the others wait at a
  barrier. Every rank reads the checkpoint to resume.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

logger = logging.getLogger(__name__)


def _world_from_env() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


class _DDP(DistributedDataParallel):
    """DDP that also answers the wrapped module's plain attributes (``net.inputs``, which
    ``nets.inputs.run_network`` reads), so the training step needs no unwrapping."""

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.module, name)


@dataclass(frozen=True)
class Job:
    """This process's place in a (possibly single-process) training job.

    Attributes:
        rank: 0..world-1, global over all nodes.
        world: number of processes (W).
        local_rank: index on this node (its GPU under CUDA).
    """

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that validates, writes and reports."""
        return self.rank == 0

    def local_config(self, cfg):
        """A ``TrainConfig`` with this rank's share of the global batch and IoU renders.

        Raises:
            ValueError: if W does not divide ``cfg.batch_size``.
        """
        if self.world == 1:
            return cfg
        if cfg.batch_size % self.world:
            raise ValueError(f"the batch size {cfg.batch_size} is the global batch: it must "
                             f"be a multiple of the {self.world} processes")
        return dataclasses.replace(cfg, batch_size=cfg.batch_size // self.world,
                                   iou_samples=-(-cfg.iou_samples // self.world))

    def wrap(self, net: nn.Module, device: torch.device, unused_parameters: bool = False
             ) -> nn.Module:
        """``net`` in DDP (the same module when W is 1). ``unused_parameters``: some trained
        parameters get no gradient (fusion: the branches' own output layers). Their outputs
        are returned but not in the loss, which ``find_unused_parameters`` cannot see, so
        that case uses DDP's static graph (the same parameters get gradients every step)."""
        if self.world == 1:
            return net
        return _DDP(net, device_ids=[device.index] if device.type == "cuda" else None,
                    static_graph=unused_parameters)

    def plan(self, ds, batch: int, workers: int, epochs: int, max_steps: int = 0
             ) -> list[int]:
        """Optimizer steps of each epoch: the most batches any rank's DataLoader yields
        (``ceil(n / batch)`` for one process with at most one worker), at most
        ``max_steps`` (0: no cap). ``ds`` is the rank's ``ShardDataset``; its epoch is
        restored.

        Raises:
            ValueError: if some rank would get no shard.
        """
        if self.world == 1 and workers <= 1:
            steps = [math.ceil(len(ds) / batch)] * epochs
        else:
            if len(ds.shards) < self.world:
                raise ValueError(f"{ds.root} has {len(ds.shards)} shards, fewer than the "
                                 f"{self.world} processes: make it with a smaller --shard-size")
            epoch, steps = ds.epoch, []
            for e in range(epochs):
                ds.set_epoch(e)
                steps.append(max(
                    sum(math.ceil(sum(map(ds.shard_length,
                                          ds.shards_for(r, self.world, w, max(workers, 1))))
                                  / batch) for w in range(max(workers, 1)))
                    for r in range(self.world)))
            ds.set_epoch(epoch)
        return [min(s, max_steps) if max_steps else s for s in steps]

    def batches(self, loader, steps: int) -> Iterator[tuple[dict, float]]:
        """(batch, loss weight) for each of the epoch's ``steps`` optimizer steps (fewer if
        every rank runs out). One process: each batch with weight 1. Several: a rank that
        has run out repeats its last batch with weight 0 (it keeps DDP's collectives in
        step), the others weight theirs by ``c_r W / N`` (module docs)."""
        it, last = iter(loader), None
        for _ in range(steps):
            batch = next(it, None)
            if self.world == 1:
                if batch is None:
                    return
                yield batch, 1.0
                continue
            count = 0 if batch is None else len(batch["index"])
            total, alive = self._sum([count, batch is not None])
            if alive == 0:
                return
            if batch is None:
                yield last, 0.0
            else:
                last = batch
                yield batch, count * self.world / total

    def all_finite(self, loss: torch.Tensor) -> bool:
        """Whether the loss is finite on every rank (so all stop together)."""
        ok = bool(torch.isfinite(loss))
        return ok if self.world == 1 else self._sum([not ok])[0] == 0

    def means(self, sums: dict[str, float], n: int) -> dict[str, float]:
        """Per-batch means of summed loss terms over all ranks' ``n`` real batches."""
        if self.world > 1:
            keys = sorted(sums)
            *values, n = self._sum([sums[k] for k in keys] + [n])
            sums = dict(zip(keys, values))
        return {k: v / max(n, 1) for k, v in sums.items()}

    def gather(self, per_sample: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Every rank's per-sample arrays (N_r, ...), concatenated in rank order on every
        rank (the same dict for one process)."""
        if self.world == 1:
            return per_sample
        parts: list = [None] * self.world
        dist.all_gather_object(parts, per_sample)
        return {k: np.concatenate([p[k] for p in parts]) for k in per_sample}

    def barrier(self) -> None:
        """Wait for every rank (no-op for one process)."""
        if self.world > 1:
            dist.barrier()

    def _sum(self, values: Sequence[float]) -> list[float]:
        """Element-wise sum of ``values`` over the ranks."""
        device = "cuda" if dist.get_backend() == "nccl" else "cpu"
        t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=device)
        dist.all_reduce(t)
        return t.tolist()


def current_job() -> Job:
    """The job of the process group this process has joined, or a single-process job."""
    if dist.is_available() and dist.is_initialized():
        return Job(dist.get_rank(), dist.get_world_size(),
                   int(os.environ.get("LOCAL_RANK", dist.get_rank())))
    return Job()


def launcher_slot() -> tuple[int, int]:
    """(rank, world size) the launcher gave this process, without joining a process group:
    for work that needs no communication (batch prediction splits its rows by it)."""
    return int(os.environ.get("RANK", "0")), _world_from_env()


def gather_lists(items: list) -> list:
    """Every launched process's ``items``, concatenated in rank order (``items`` itself
    without a launcher). Joins a gloo group just for this, with a day's timeout, so that
    processes that finish early wait for the slow ones instead of ending the job: torchrun
    stops every process as soon as one exits with an error."""
    if _world_from_env() <= 1:
        return list(items)
    import datetime

    own = not dist.is_initialized()
    if own:
        dist.init_process_group("gloo", timeout=datetime.timedelta(days=1))
    parts: list = [None] * dist.get_world_size()
    dist.all_gather_object(parts, list(items))
    if own:
        dist.destroy_process_group()
    return [x for part in parts for x in part]


def local_device(device: torch.device) -> torch.device:
    """Under a launcher, a CUDA device becomes this process's GPU ``LOCAL_RANK``.

    Raises:
        ValueError: the node has fewer GPUs than processes.
    """
    if device.type != "cuda" or "LOCAL_RANK" not in os.environ:
        return device
    local = int(os.environ["LOCAL_RANK"])
    if local >= torch.cuda.device_count():
        raise ValueError(f"process {local} on this node has no GPU "
                         f"({torch.cuda.device_count()} visible): lower --nproc-per-node")
    torch.cuda.set_device(local)
    return torch.device("cuda", local)


def init_job(device: torch.device) -> tuple[Job, torch.device]:
    """Join the process group torchrun describes in the environment (module docs).

    Returns:
        (job, device): under CUDA each process takes GPU ``LOCAL_RANK``.

    Raises:
        ValueError: a multi-process job on MPS, or on a node with too few GPUs.
    """
    if _world_from_env() <= 1:
        return Job(), device
    if device.type == "mps":
        raise ValueError("several processes need CUDA or the CPU, not MPS")
    device = local_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    job = current_job()
    logger.info("rank %d of %d (local %d) on %s", job.rank, job.world, job.local_rank, device)
    return job, device


def close_job(job: Job) -> None:
    """Leave the process group (no-op for one process)."""
    if job.world > 1 and dist.is_initialized():
        dist.destroy_process_group()


def launch(nproc: int, argv: Sequence[str]) -> int:
    """Run ``python -m bodyshape ARGV`` in ``nproc`` processes on this node through
    torchrun's launcher (``--standalone``: a free local rendezvous port) -> exit status.

    Raises:
        ValueError: if this process is already part of a job.
    """
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import main as torchrun

    if _world_from_env() > 1 or "LOCAL_RANK" in os.environ:
        raise ValueError("--nproc starts its own processes: do not combine it with torchrun")
    try:
        torchrun(["--standalone", f"--nproc-per-node={int(nproc)}", "-m", "bodyshape",
                  *argv])
    except ChildFailedError as exc:  # the failing process has reported its own error
        return int(exc.get_first_failure()[1].exitcode) or 1
    return 0
