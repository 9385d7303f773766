"""Training on several processes (``bodyshape.distributed``): 2 gloo processes on the CPU.

Tiny data and networks (the fixtures of ``conftest``): every sample once per epoch across
ranks and workers, the same weights as one process with the same global batch, kill and
resume, rank 0 the only writer, and the ``--nproc`` command line through torchrun.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from conftest import SMALL
from torch.multiprocessing.spawn import ProcessException

from bodyshape.checkpoint import load_checkpoint
from bodyshape.distributed import Job, current_job
from bodyshape.train import StageData, TrainConfig, train_stage

WORLD = 2
# Global batch 8 over shards of 4: each rank's half of a step is one whole shard, so a step
# holds the same samples as one process's batch; IoU on every sample; no random hiding (its
# draws are per rank). Augmentation stays on: it is seeded per sample.
# No hidden inputs: each rank draws its own (``train._Hiding``), so hiding would make two
# processes differ from one by design.
CFG = TrainConfig(stage="front", epochs=2, **{**SMALL, "batch_size": 8, "iou_samples": 8},
                  sex_dropout=0.0, weight_input=False)


@pytest.fixture(scope="module")
def shards(small_model_path, tmp_path_factory):
    """Two datasets: 16 samples in 4 shards of 4, and 10 samples in 5 shards of 2 (uneven:
    rank 0 gets 3 shards, rank 1 two)."""
    from bodyshape.calibrate import CalibrationSpec
    from bodyshape.render.camera import CameraSpec
    from bodyshape.synth.generate import SynthSpec
    from bodyshape.synth.shards import write_dataset

    spec = SynthSpec(camera=CameraSpec(long_side=256), calibration=CalibrationSpec(64, 64))
    root = tmp_path_factory.mktemp("ddp")
    write_dataset(small_model_path, root / "even", 16, 0, spec, shard_size=4, progress=False)
    write_dataset(small_model_path, root / "uneven", 10, 1, spec, shard_size=2,
                  progress=False)
    return root


def _join(rank: int, store: Path) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank,
                            world_size=WORLD)


def _data_worker(rank: int, store: Path, root: Path, out: Path) -> None:
    """Stream 2 epochs of ``root`` (2 DataLoader workers, batch 3) through ``Job.batches``;
    write (indices, weight) per step."""
    from bodyshape.dataset.stream import ShardDataset

    _join(rank, store)
    job = current_job()
    ds = ShardDataset(root, shuffle=True, seed=3, rank=job.rank, world_size=job.world)
    plan = job.plan(ds, 3, 2, epochs=2)
    steps = []
    for epoch in range(2):
        ds.set_epoch(epoch)
        loader = torch.utils.data.DataLoader(ds, batch_size=3, num_workers=2,
                                             multiprocessing_context="fork")
        steps.append([(b["index"].tolist(), w) for b, w in job.batches(loader, plan[epoch])])
    out.with_name(f"{out.name}-{rank}.json").write_text(json.dumps({"plan": plan,
                                                                    "steps": steps}))
    dist.destroy_process_group()


def _train_worker(rank: int, store: Path, model_path: Path, data: Path, cfg: TrainConfig,
                  out: Path, die_after: int, evaluate_on: Path | None = None) -> None:
    """``train_stage`` on rank ``rank``, logging who calls the writers; rank 1 dies (as if
    killed) after ``die_after`` loss calls when it is not 0. Then each rank writes its
    ``evaluate`` report of the checkpoint on ``evaluate_on``."""
    import bodyshape.train as tr
    from bodyshape.body import BodyModel
    from bodyshape.evaluate import evaluate

    _join(rank, store)
    log = out.with_name(out.name + ".writes")

    def logging_writer(name):
        real = getattr(tr, name)

        def logged(*a, **k):
            with log.open("a") as f:
                f.write(f"{rank} {name}\n")
            return real(*a, **k)
        return logged

    for name in ("save_checkpoint", "_write_history"):
        setattr(tr, name, logging_writer(name))
    if die_after and rank == 1:
        real, calls = tr._Runner.losses, [0]

        def losses(self, *a, **k):
            calls[0] += 1
            if calls[0] > die_after:
                os._exit(9)  # no clean-up, as under a kill
            return real(self, *a, **k)
        tr._Runner.losses = losses
    body = BodyModel.load(model_path)
    tr.train_stage(cfg, StageData(data, None, body), out, progress=False)
    if evaluate_on is not None:
        report = evaluate(load_checkpoint(out / "checkpoint.pt"), evaluate_on, body)
        out.with_name(f"report-{rank}.json").write_text(json.dumps(report))
    dist.destroy_process_group()


def _spawn(fn, tmp: Path, *args) -> None:
    store = tmp / f"store-{len(list(tmp.glob('store-*')))}"
    mp.spawn(fn, args=(store, *args), nprocs=WORLD, join=True)


def test_every_sample_once_per_epoch_across_ranks_and_workers(shards, tmp_path):
    _spawn(_data_worker, tmp_path, shards / "uneven", tmp_path / "seen")
    ranks = [json.loads((tmp_path / f"seen-{r}.json").read_text()) for r in range(WORLD)]
    assert ranks[0]["plan"] == ranks[1]["plan"] == [3, 3]  # rank 0: batches 3+1 and 2
    for epoch in range(2):
        steps = [r["steps"][epoch] for r in ranks]
        assert len(steps[0]) == len(steps[1]) == 3  # the same optimizer steps on every rank
        real = sorted(i for s in steps for idx, w in s if w > 0 for i in idx)
        assert real == list(range(10))  # each sample exactly once
        for (i0, w0), (i1, w1) in zip(*steps):
            # Weights c_r W / N: the DDP mean of the weighted losses is the step's mean.
            n = len(i0) * (w0 > 0) + len(i1) * (w1 > 0)
            assert w0 + w1 == pytest.approx(WORLD)
            assert w0 == pytest.approx(len(i0) * WORLD / n if w0 else 0.0)
        # Rank 0 holds 3 shards, rank 1 two: rank 1 fills the last step with weight 0.
        assert steps[1][-1][1] == 0.0 and steps[0][-1][1] > 0
    assert ranks[0]["steps"][0] != ranks[0]["steps"][1]  # a new order each epoch


@pytest.fixture(scope="module")
def ddp_run(shards, small_model_path, tmp_path_factory):
    """2 epochs on 2 processes, killed in epoch 2 (rank 1 dies mid-step, as under a kill)
    and resumed by the same command; then evaluated on 2 processes."""
    tmp = tmp_path_factory.mktemp("ddp_run")
    out = tmp / "run"
    with pytest.raises(ProcessException):
        _spawn(_train_worker, tmp, small_model_path, shards / "even", CFG, out, 2)
    killed = load_checkpoint(out / "checkpoint.pt").train
    _spawn(_train_worker, tmp, small_model_path, shards / "even", CFG, out, 0,
           shards / "even")
    return out, killed


def test_killed_and_resumed_job_matches_one_process_with_the_same_global_batch(
        ddp_run, shards, small_model_path, tmp_path):
    from bodyshape.body import BodyModel

    out, killed = ddp_run
    assert killed["epoch"] == 1 and killed["world_size"] == 2
    two = load_checkpoint(out / "checkpoint.pt")
    assert two.train["epoch"] == 2 and len(two.train["history"]) == 2
    one = load_checkpoint(train_stage(CFG, StageData(shards / "even", None,
                                                     BodyModel.load(small_model_path)),
                                      tmp_path / "one", progress=False))
    a, b = one.model.state_dict(), two.model.state_dict()
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-4, atol=1e-5)
    # The per-epoch means of the loss terms are the same too (rank 0 reports all ranks').
    for h1, h2 in zip(one.train["history"], two.train["history"]):
        assert h2["pca"] == pytest.approx(h1["pca"], rel=1e-4)


def test_evaluation_is_shared_by_the_ranks(ddp_run, shards, small_model_path):
    from bodyshape.body import BodyModel
    from bodyshape.evaluate import evaluate

    out, _ = ddp_run
    one = evaluate(load_checkpoint(out / "checkpoint.pt"), shards / "even",
                   BodyModel.load(small_model_path))
    for rank in range(WORLD):  # every rank returns the whole set's report
        two = json.loads((out.with_name(f"report-{rank}.json")).read_text())
        assert two["all"]["n"] == one["all"]["n"] == 16
        for key, value in one["all"].items():
            assert two["all"][key] == pytest.approx(value, rel=1e-6), key
        assert two["by_bmi"].keys() == one["by_bmi"].keys()


def test_only_rank_0_writes(ddp_run):
    out, _ = ddp_run
    writes = (out.with_name("run.writes")).read_text().split("\n")[:-1]
    # Epoch 1 before the kill, epoch 2 after the resume: rank 0 each time.
    assert sorted(writes) == ["0 _write_history"] * 2 + ["0 save_checkpoint"] * 2
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt", "history.csv",
                                                     "loss.png"]


def test_single_process_job_is_the_plain_loop(shards):
    from bodyshape.dataset.stream import ShardDataset

    job = current_job()
    assert job == Job() and job.is_main and job.local_config(CFG) is CFG
    ds = ShardDataset(shards / "uneven", shuffle=True)
    assert job.plan(ds, 3, 1, 2) == [4, 4] and job.plan(ds, 3, 1, 2, max_steps=2) == [2, 2]
    assert job.plan(ds, 3, 2, 1) == [4]  # 2 workers: 3 shards (6 samples) and 2 (4)
    local = Job(1, 2).local_config(CFG)
    assert (local.batch_size, local.iou_samples) == (4, 4)
    with pytest.raises(ValueError, match="global batch"):
        Job(0, 3).local_config(CFG)
    with pytest.raises(ValueError, match="fewer than the 8 processes"):
        Job(0, 8).plan(ds, 1, 1, 1)
    with pytest.raises(ValueError, match="rank < world_size"):
        ShardDataset(shards / "even", rank=2, world_size=2)


def test_cli_nproc_runs_torchrun_and_reports_once(shards, small_model_path, tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(Path(__file__).parents[1] / "src"), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "bodyshape", "train", "--nproc", "2", "--stage", "side",
           "--data", str(shards / "even"), "--out", str(tmp_path / "cli"), "--shape-model",
           str(small_model_path), "--epochs", "1", "--max-steps", "1", "--iou-size", "16",
           "--device", "cpu", "--no-progress"]
    res = subprocess.run(cmd + ["--batch-size", "8"], capture_output=True, text=True,
                         env=env, timeout=300, check=False)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.count("checkpoint:") == 1  # rank 0 reports
    ck = load_checkpoint(tmp_path / "cli" / "checkpoint.pt")
    assert ck.train["world_size"] == 2 and len(ck.train["history"]) == 1
