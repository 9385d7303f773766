"""CLI: register / pca fit / pca sample / pca summary on small generated fixtures (no anny)."""

import json

import numpy as np
import pytest
import trimesh
from click.testing import CliRunner

from bodyshape.cli import main
from bodyshape.shape.meshio import save_body_mesh
from bodyshape.shape.template import load_template


@pytest.fixture(scope="module")
def template():
    return load_template()


def _bodies(template, n, seed=0):
    """Smooth random variations of the template: per-axis scales and a belly bulge."""
    rng = np.random.default_rng(seed)
    v = template.vertices
    out = []
    for _ in range(n):
        s = 1 + 0.05 * rng.standard_normal(3)
        bulge = 0.02 * rng.standard_normal() * np.exp(-((v[:, 2] - 0.1) ** 2) / 0.01)
        w = v * s
        w[:, 1] -= bulge * (v[:, 1] < 0)
        out.append(w)
    return out


def test_register_folder_reports_bad_files_and_resumes(tmp_path, template):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    body = _bodies(template, 1)[0]
    save_body_mesh(src / "good.ply", body, template.faces)
    lms = {n: body[i].tolist() for n, i in zip(template.landmark_names, template.landmark_indices)}
    (src / "good.landmarks.json").write_text(json.dumps(lms))
    (src / "garbage.obj").write_bytes(b"\x00\x01 not a mesh")
    (src / "empty.ply").write_bytes(b"")
    args = ["register", str(src), "--out", str(out), "--shape-model", "none"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 1, r.output
    assert "garbage.obj" in r.output and "empty.ply" in r.output
    assert "registered 1" in r.output and "failed 2" in r.output
    reg = trimesh.load(out / "good.ply", process=False)
    assert np.linalg.norm(np.asarray(reg.vertices) - body, axis=1).mean() < 1e-3
    info = json.loads((out / "good.registration.json").read_text())
    assert info["landmarks"] == "file"
    assert not [p for p in out.iterdir() if ".tmp" in p.name]
    # Rerun: the finished mesh is skipped, not redone.
    stamp = (out / "good.ply").stat().st_mtime_ns
    r = CliRunner().invoke(main, args)
    assert "skipped 1" in r.output
    assert (out / "good.ply").stat().st_mtime_ns == stamp
    # A skipped registration that an earlier run marked failed is still reported as such.
    (src / "garbage.obj").unlink()
    (src / "empty.ply").unlink()
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0 and "failed the quality check 0" in r.output, r.output
    info["failed"] = True
    (out / "good.registration.json").write_text(json.dumps(info))
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 1 and "skipped 1" in r.output, r.output
    assert "failed the quality check 1" in r.output and "earlier run" in r.output


def test_register_missing_folder_is_a_clear_error(tmp_path):
    r = CliRunner().invoke(main, ["register", str(tmp_path / "nope"), "--out", str(tmp_path)])
    assert r.exit_code == 2 and "nope" in r.output


@pytest.mark.parametrize("up", ["file", "w", "+zz"])
def test_register_bad_up_axis_is_a_clear_error(tmp_path, up):
    r = CliRunner().invoke(main, ["register", str(tmp_path), "--out", str(tmp_path / "o"),
                                  "--shape-model", "none", "--up", up])
    assert r.exit_code == 2 and "up must be" in r.output and "Traceback" not in r.output


def test_pca_fit_sample_summary(tmp_path, template):
    reg = tmp_path / "reg"
    reg.mkdir()
    for i, v in enumerate(_bodies(template, 12)):
        save_body_mesh(reg / f"b{i:02d}.ply", v, template.faces)
    model = tmp_path / "m.npz"
    r = CliRunner().invoke(main, ["pca", "fit", str(reg), "--components", "4", "--mixture", "2",
                                  "--out", str(model)])
    assert r.exit_code == 0, r.output
    assert "components: 4" in r.output
    r = CliRunner().invoke(main, ["pca", "sample", str(model), "--n", "3", "--seed", "1",
                                  "--method", "gmm", "--out", str(tmp_path / "s")])
    assert r.exit_code == 0, r.output
    assert len(list((tmp_path / "s").glob("*.ply"))) == 3
    first = (tmp_path / "s" / "sample_00000.ply").read_bytes()
    CliRunner().invoke(main, ["pca", "sample", str(model), "--n", "3", "--seed", "1",
                              "--method", "gmm", "--out", str(tmp_path / "s2")])
    assert (tmp_path / "s2" / "sample_00000.ply").read_bytes() == first
    r = CliRunner().invoke(main, ["pca", "summary", str(model)])
    assert r.exit_code == 0 and "PCA shape model" in r.output


def test_pca_fit_refuses_foreign_topology(tmp_path):
    d = tmp_path / "x"
    d.mkdir()
    box = trimesh.creation.box([0.3, 0.3, 1.7])
    for i in range(3):
        save_body_mesh(d / f"b{i}.ply", np.asarray(box.vertices), np.asarray(box.faces))
    r = CliRunner().invoke(main, ["pca", "fit", str(d), "--out", str(tmp_path / "m.npz")])
    assert r.exit_code == 2 and "template topology" in r.output


def test_pca_summary_bad_file(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_text("nope")
    r = CliRunner().invoke(main, ["pca", "summary", str(bad)])
    assert r.exit_code == 2 and "bad.npz" in r.output


def test_register_estimates_landmarks_and_turns_to_canonical_facing(tmp_path, template):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    body = _bodies(template, 1, seed=3)[0]
    save_body_mesh(src / "turned.ply", body * [-1, -1, 1], template.faces)  # faces +Y
    r = CliRunner().invoke(main, ["register", str(src), "--out", str(out),
                                  "--shape-model", "none"])
    assert r.exit_code == 0, r.output
    reg = np.asarray(trimesh.load(out / "turned.canonical.ply", process=False).vertices)
    info = json.loads((out / "turned.registration.json").read_text())
    assert info["landmarks"] == "estimated" and info["turned_to_face_minus_y"]
    assert info["failed"] is False and info["scan_to_template_p95_mm"] > 0
    sellion = template.landmark_index("sellion")
    assert reg[sellion, 1] < reg[:, 1].mean()  # the canonical body faces -Y
    err = np.linalg.norm((reg - reg.mean(0)) - (body - body.mean(0)), axis=1)
    assert np.median(err) < 0.005
    # NAME.ply stays in the scan's own frame: it overlays the input (facing +Y).
    posed = np.asarray(trimesh.load(out / "turned.ply", process=False).vertices)
    assert np.median(np.linalg.norm(posed - body * [-1, -1, 1], axis=1)) < 0.005
