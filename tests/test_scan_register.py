"""Pose-aware registration of scans (shape.scan_register + body.posed_fit), on a truly
non-anny topology: a posed body subdivided and remeshed by vertex clustering, Y up."""

import json

import numpy as np
import pytest
import trimesh

from bodyshape.body.posed_fit import PosedFitConfig, PosedFitter
from bodyshape.shape.mesh_frame import candidate_rotations
from bodyshape.shape.register import RegistrationConfig, SurfaceSampler
from bodyshape.shape.scan_register import register_scan, registration_quality

FAST = PosedFitConfig(screen_iterations=25, iterations=50, refine_iterations=40,
                      start_arm_deg=(5.0, 90.0))
FAST_ICP = RegistrationConfig(stiffness=(10.0, 1.0, 0.3), landmark_weight=(10.0, 2.0, 1.0))
Y_UP = np.array([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]])  # Z-up -> Y-up


def _remesh(posed: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Subdivide, then decimate by vertex clustering on a 9 mm grid: another topology (no
    vertex of the template survives), like a scanner's mesh."""
    sub = trimesh.Trimesh(posed, faces, process=False).subdivide()
    cell = np.floor(np.asarray(sub.vertices) / 0.009).astype(np.int64)
    _, inverse = np.unique(cell, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    v = np.stack([np.bincount(inverse, sub.vertices[:, c]) for c in range(3)], 1)
    v /= np.bincount(inverse)[:, None]
    f = inverse[np.asarray(sub.faces)]
    f = f[(f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 0] != f[:, 2])]
    return v, np.unique(f, axis=0)


@pytest.fixture(scope="module")
def scan(body):
    """A T-posed body from the shipped model, remeshed (9 mm vertex clustering), Y up."""
    rest = body.shape.mean.astype(np.float64)
    angles = body.rest_pose(1).angles.copy()
    angles[0, :2] = np.radians([88.0, 92.0])  # a T-pose: arm span about the height
    angles[0, 4:6] = np.radians(-35.0)
    posed = body.pose(rest, angles[0])
    v, f = _remesh(posed, body.faces)
    return rest, posed @ Y_UP.T, v @ Y_UP.T, f


def test_registers_a_remeshed_t_pose_presented_y_up(body, scan):
    rest, truth, v, f = scan
    assert len(v) != len(rest)  # another topology
    cands, labels = candidate_rotations(v)
    assert len(cands) >= 4  # T-pose: height and arm span both candidate up axes
    r = register_scan(v, f, body.template, PosedFitter(body, FAST), cands,
                      np.random.default_rng(0), config=FAST_ICP)
    assert labels[r.coarse.candidate] == "up +y, facing -Y"
    posed_err = np.linalg.norm(r.vertices - truth, axis=1)
    assert np.median(posed_err) < 0.01
    # The canonical output is an A-pose body again: close to the rest body after a shift.
    can = r.canonical - r.canonical.mean(0) + rest.mean(0)
    assert np.median(np.linalg.norm(can - rest, axis=1)) < 0.015
    assert not r.quality.failed


def test_rest_pose_scan_unposes_to_itself(body):
    """A scan in the canonical A-pose: the canonical output is the posed registration
    again (unposing a body in the rest pose changes nothing), and both lie on the body."""
    rng = np.random.default_rng(3)
    coeffs = rng.standard_normal(20) * body.shape.std[:20]
    rest = body.shape.mean.astype(np.float64) + np.einsum(
        "k,kvd->vd", coeffs, body.shape.components[:20].reshape(20, -1, 3))
    v, f = _remesh(rest, body.faces)
    r = register_scan(v, f, body.template, PosedFitter(body, FAST), candidate_rotations(v)[0],
                      np.random.default_rng(0), config=FAST_ICP)
    posed_err = np.linalg.norm(r.vertices - rest, axis=1)
    assert posed_err.mean() < 0.004 and not r.quality.failed
    can = r.canonical - r.canonical.mean(0) + r.vertices.mean(0)
    assert np.linalg.norm(can - r.vertices, axis=1).mean() < 0.002
    assert np.abs(np.degrees(r.coarse.angles - body.rest_pose(1).angles[0])).max() < 2.0


def test_quality_catches_a_missing_arm(body, scan):
    """Coverage: a template that sits well on part of the scan but misses an arm fails."""
    _, truth, v, f = scan
    sampler = SurfaceSampler.from_mesh(v, f)
    good = registration_quality(truth, body.faces, sampler)
    assert not good.failed
    folded = truth.copy()
    arm = body.rig.weights[:, [body.rig.joint_index(j) for j in
                               ("elbow_l", "wrist_l")]].sum(1) > 0.5
    folded[arm] = truth[~arm].mean(0)  # the forearm and hand collapsed into the torso
    bad = registration_quality(folded, body.faces, sampler)
    assert bad.failed and bad.scan_to_template_p95_mm > good.scan_to_template_p95_mm


def test_register_cli_writes_posed_and_canonical_and_pca_refuses_flagged(tmp_path, body,
                                                                         small_model_path):
    from click.testing import CliRunner

    from bodyshape.cli import main
    from bodyshape.shape.meshio import save_body_mesh

    reg = tmp_path / "reg"
    reg.mkdir()
    for i in range(6):
        save_body_mesh(reg / f"b{i}.ply", body.template.vertices * (1 + 0.01 * i), body.faces)
        save_body_mesh(reg / f"b{i}.canonical.ply", body.template.vertices * (1 + 0.01 * i),
                       body.faces)
        (reg / f"b{i}.registration.json").write_text(json.dumps({"failed": i == 0}))
    args = ["pca", "fit", str(reg), "--components", "2", "--mixture", "0", "--out",
            str(tmp_path / "m.npz")]
    r = CliRunner().invoke(main, args)
    assert r.exit_code != 0 and "b0" in r.output and "--force" in r.output
    r = CliRunner().invoke(main, args + ["--force"])
    assert r.exit_code == 0, r.output


def test_register_cli_pose_aware_outputs(tmp_path, body, scan):
    """`bodyshape register` with the shipped model on a T-pose in millimetres, Y up."""
    from click.testing import CliRunner

    from bodyshape.cli import main
    from bodyshape.shape.meshio import save_body_mesh

    _, truth, v, f = scan
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    save_body_mesh(src / "t.ply", v * 1000.0, f)
    r = CliRunner().invoke(main, ["register", str(src), "--out", str(out)])
    assert r.exit_code == 0, r.output
    info = json.loads((out / "t.registration.json").read_text())
    assert info["path"] == "pose-aware" and info["orientation"].startswith("up +y, facing -Y")
    assert info["failed"] is False and "arm_abduction_l" in info["coarse_fit"]["pose_deg"]
    posed = np.asarray(trimesh.load(out / "t.ply", process=False).vertices)
    assert np.median(np.linalg.norm(posed - truth, axis=1)) < 0.01  # overlays the input (m)
    can = np.asarray(trimesh.load(out / "t.canonical.ply", process=False).vertices)
    assert np.ptp(can[:, 2]) > np.ptp(can[:, 0])  # stands Z up in an A-pose again
