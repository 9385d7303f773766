"""A dataset split over a Slurm job array and merged (``bodyshape.synth.parts``): the
array variables, ``bodyshape synth merge`` and its refusals, on 6 tiny samples."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from conftest import dataset_files as _files

from bodyshape.cli import main
from bodyshape.synth.parts import ArrayPart, array_part, merge

N, SHARD = 6, 2  # 3 shards: one per array task


def _args(model_path, out):
    return ["synth", "--shape-model", str(model_path), "--n", str(N), "--seed", "4",
            "--shard-size", str(SHARD), "--canvas", "64", "--frame", "256", "--out", str(out),
            "--no-progress"]


@pytest.fixture(scope="module")
def single(small_model_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("single") / "data"
    res = CliRunner().invoke(main, _args(small_model_path, out), env={
        "SLURM_ARRAY_TASK_ID": None})
    assert res.exit_code == 0, res.output
    return out


def test_array_variables():
    env = {"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_COUNT": "3",
           "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_STEP": "2"}
    assert array_part(env) == ArrayPart(2, 3, 5)  # tasks 1, 3, 5
    assert array_part({"SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_COUNT": "4"}) == \
        ArrayPart(0, 4, 0)
    assert array_part({}) is None
    with pytest.raises(ValueError, match="SLURM_ARRAY_TASK_COUNT is not"):
        array_part({"SLURM_ARRAY_TASK_ID": "1"})
    with pytest.raises(ValueError, match="not one of 3 tasks"):
        array_part({**env, "SLURM_ARRAY_TASK_ID": "4"})
    with pytest.raises(ValueError, match="not integers"):
        array_part({**env, "SLURM_ARRAY_TASK_ID": "x"})


def test_three_array_tasks_merged_equal_a_single_run(small_model_path, single, tmp_path):
    out = tmp_path / "array"
    run = CliRunner().invoke
    for task in (1, 2, 3):  # sbatch --array=1-3: SLURM_ARRAY_TASK_MIN is 1
        env = {"SLURM_ARRAY_TASK_ID": str(task), "SLURM_ARRAY_TASK_COUNT": "3",
               "SLURM_ARRAY_TASK_MIN": "1"}
        res = run(main, _args(small_model_path, out), env=env)
        assert res.exit_code == 0, res.output
        assert f"part {task - 1} of 3" in res.output
    assert sorted(p.name for p in out.glob("manifest.part-*")) == [
        f"manifest.part-{i}-of-3.json" for i in range(3)]
    (out / "manifest.json").unlink()  # as when the parts are copied together afterwards
    res = run(main, ["synth", "merge", str(out)])
    assert res.exit_code == 0 and "merged 3 shards from 3 part manifests" in res.output
    assert _files(out) == _files(single)  # byte-identical, manifest included
    # The flags win over the array variables: --shard-index 0 --num-shards 1 is everything.
    res = run(main, _args(small_model_path, tmp_path / "whole") + [
        "--shard-index", "0", "--num-shards", "1"], env={"SLURM_ARRAY_TASK_ID": "7"})
    assert res.exit_code == 0 and _files(tmp_path / "whole") == _files(single)


def test_merge_refuses_missing_foreign_and_mismatched_parts(small_model_path, single,
                                                            tmp_path):
    out = tmp_path / "parts"
    run = CliRunner().invoke
    for task in (0, 2):  # task 1 never ran
        env = {"SLURM_ARRAY_TASK_ID": str(task), "SLURM_ARRAY_TASK_COUNT": "3"}
        assert run(main, _args(small_model_path, out), env=env).exit_code == 0
    res = run(main, ["synth", "merge", str(out)])
    assert res.exit_code == 2 and "1 of 3 shards missing (shard-00001.npz)" in res.output
    assert "rerun part 1 of 3" in res.output and not (out / "manifest.json").exists()
    # A part of another dataset (another seed) dropped into the folder.
    part = out / "manifest.part-1-of-3.json"
    other = json.loads((out / "manifest.part-0-of-3.json").read_text())
    other["config"]["seed"] = 5
    part.write_text(json.dumps(other))
    res = run(main, ["synth", "merge", str(out)])
    assert res.exit_code == 2 and "another dataset (differs in: seed)" in res.output
    part.unlink()
    # A shard recorded twice with different bytes.
    bad = json.loads((out / "manifest.part-0-of-3.json").read_text())
    bad["shards"]["shard-00000.npz"] = "0" * 64
    (out / "manifest.part-0-of-1.json").write_text(json.dumps(bad))
    res = run(main, ["synth", "merge", str(out)])
    assert res.exit_code == 2 and "disagrees" in res.output
    (out / "manifest.part-0-of-1.json").unlink()
    # A foreign shard file.
    (out / "shard-00007.npz").write_bytes(b"x")
    with pytest.raises(ValueError, match="shard-00007.npz is not one of the 3 shards"):
        merge(out)
    (out / "shard-00007.npz").unlink()
    # Finishing the missing part completes the dataset; merge checks it again.
    env = {"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "3"}
    assert run(main, _args(small_model_path, out), env=env).exit_code == 0
    assert merge(out).shards == 3 and _files(out) == _files(single)
    assert run(main, ["synth", "merge", str(tmp_path)]).exit_code == 2  # no config.json
    res = run(main, ["synth", "--n", "3", "merge", str(out)])
    assert res.exit_code == 2 and "takes no synth options" in res.output
