"""anny body sources and the end-to-end register path (builds anny models: slow first run)."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from bodyshape.cli import main
from bodyshape.shape import anny_bodies as ab

pytestmark = pytest.mark.anny


def test_sampling_is_deterministic_and_symmetric():
    a = ab.sample_body_params(20, np.random.default_rng(5))
    b = ab.sample_body_params(20, np.random.default_rng(5))
    c = ab.sample_body_params(20, np.random.default_rng(6))
    np.testing.assert_array_equal(a.phenotypes, b.phenotypes)
    np.testing.assert_array_equal(a.local_changes, b.local_changes)
    assert not np.array_equal(a.phenotypes, c.phenotypes)
    labels = a.local_change_labels
    for j, lab in enumerate(labels):
        if lab.startswith("l-"):
            k = labels.index("r-" + lab[2:])
            np.testing.assert_array_equal(a.local_changes[:, j], a.local_changes[:, k])
    assert np.abs(a.local_changes).max() <= 1.0
    male = np.array([s == "male" for s in a.sex])
    assert np.all(a.phenotypes[male, 0] <= 0.5) and np.all(a.phenotypes[~male, 0] >= 0.5)


def test_local_changes_add_variation():
    p = ab.sample_body_params(6, np.random.default_rng(0))
    assert np.count_nonzero(p.local_changes[0]) > 50
    none = ab.sample_body_params(6, np.random.default_rng(0), local=None)
    assert np.count_nonzero(none.local_changes) == 0


def test_bodies_cli_writes_meshes_and_records(tmp_path):
    out = tmp_path / "bodies"
    r = CliRunner().invoke(main, ["bodies", "--n", "3", "--seed", "4", "--out", str(out)])
    assert r.exit_code == 0, r.output
    meta = json.loads((out / "bodies.json").read_text())
    assert meta["topology"] == "anny-noeyes-notongue" and len(meta["bodies"]) == 3
    rec = meta["bodies"]["body_00000"]
    assert rec["sex"] in ("male", "female") and 1.3 < rec["stature_m"] < 2.2
    first = (out / "body_00000.ply").read_bytes()
    # Same seed again: resumes (nothing to do) and gives the same bytes.
    (out / "body_00001.ply").unlink()
    r = CliRunner().invoke(main, ["bodies", "--n", "3", "--seed", "4", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert (out / "body_00000.ply").read_bytes() == first
    assert (out / "body_00001.ply").exists()


def test_register_notoes_bodies_with_transferred_landmarks(tmp_path):
    from bodyshape.shape.folders import write_anny_bodies
    import trimesh

    src = tmp_path / "notoes"
    write_anny_bodies(src, 2, "notoes", seed=11, progress=False)
    r = CliRunner().invoke(main, ["register", str(src), "--out", str(tmp_path / "reg"),
                                  "--shape-model", "default"])
    assert r.exit_code == 0, r.output
    truth = ab.body_meshes(ab.sample_body_params(2, np.random.default_rng(11)))
    for i in range(2):
        reg = trimesh.load(tmp_path / "reg" / f"body_{i:05d}.ply", process=False)
        err = np.linalg.norm(np.asarray(reg.vertices) - truth.vertices[i], axis=1)
        assert err.mean() < 0.004, err.mean()
    info = json.loads((tmp_path / "reg" / "body_00000.registration.json").read_text())
    assert info["landmarks"].startswith("anny transfer")
