"""Tests for bodyshape.shape.meshio: importing external body meshes of any topology."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import trimesh

from bodyshape.shape.mesh_clean import MeshInputError
from bodyshape.shape.meshio import (
    BodyMesh,
    list_mesh_files,
    load_body_mesh,
    save_body_mesh,
)

# A crude A-pose "body" in the canonical frame (meters, Z up, arms along X): a closed tube of
# elliptic rings whose X half-width follows a silhouette (legs, wide arms/shoulders, head) and
# whose centre moves along -Y at the chest (so rotations that are wrong by a half turn show).
_PROFILE_Z = np.array([0.0, 0.4, 0.8, 0.95, 1.1, 1.3, 1.42, 1.48, 1.55, 1.7])
_PROFILE_A = np.array([0.20, 0.18, 0.17, 0.35, 0.50, 0.60, 0.25, 0.07, 0.10, 0.08])
_PROFILE_B = np.array([0.10, 0.08, 0.10, 0.12, 0.13, 0.13, 0.12, 0.06, 0.10, 0.09])
_PROFILE_C = np.array([0.0, 0.0, 0.0, -0.02, -0.04, -0.03, 0.0, 0.0, -0.02, 0.0])

HEIGHT = 1.7


def make_body(n_rings: int = 30, n_around: int = 24) -> tuple[np.ndarray, np.ndarray]:
    """(V, 3) float64 meters and (F, 3) int64 faces of a watertight, outward-wound body."""
    z = np.linspace(0.0, HEIGHT, n_rings)
    a = np.interp(z, _PROFILE_Z, _PROFILE_A)
    b = np.interp(z, _PROFILE_Z, _PROFILE_B)
    c = np.interp(z, _PROFILE_Z, _PROFILE_C)
    t = np.linspace(0.0, 2 * np.pi, n_around, endpoint=False)
    ring = np.stack(
        [a[:, None] * np.cos(t), c[:, None] + b[:, None] * np.sin(t), np.repeat(z[:, None], n_around, 1)],
        axis=-1,
    ).reshape(-1, 3)
    bottom, top = len(ring), len(ring) + 1
    vertices = np.concatenate([ring, [[0.0, c[0], 0.0], [0.0, c[-1], HEIGHT]]])
    faces = []
    for i in range(n_rings - 1):
        for j in range(n_around):
            p, q = i * n_around + j, i * n_around + (j + 1) % n_around
            faces += [[p, q, q + n_around], [p, q + n_around, p + n_around]]
    last = (n_rings - 1) * n_around
    for j in range(n_around):
        jn = (j + 1) % n_around
        faces += [[bottom, jn, j], [top, last + j, last + jn]]
    return vertices, np.array(faces, dtype=np.int64)


BODY_V, BODY_F = make_body()


def write_mesh(path: Path, vertices: np.ndarray, faces: np.ndarray) -> Path:
    trimesh.Trimesh(vertices, faces, process=False).export(path)
    return path


def to_y_up(v: np.ndarray) -> np.ndarray:
    """Canonical Z-up -> the common Y-up convention (subject facing +Z, left at +X)."""
    return np.stack([v[..., 0], v[..., 2], -v[..., 1]], axis=-1)


def assert_refused(path: Path, match: str, **kwargs) -> MeshInputError:
    with pytest.raises(MeshInputError, match=match) as info:
        load_body_mesh(path, **kwargs)
    message = str(info.value)
    assert message.startswith(f"{path.name}: "), message
    assert "\n" not in message
    return info.value


def test_fixture_is_a_clean_watertight_body():
    mesh = trimesh.Trimesh(BODY_V, BODY_F, process=False)
    assert mesh.is_watertight and mesh.is_winding_consistent and mesh.volume > 0


@pytest.mark.parametrize("ext", ["obj", "ply", "off"])
def test_formats_load_to_the_same_vertices(tmp_path, ext):
    path = write_mesh(tmp_path / f"body.{ext}", BODY_V, BODY_F)
    body = load_body_mesh(path)
    assert isinstance(body, BodyMesh)
    assert body.name == "body"
    assert body.vertices.dtype == np.float64 and body.faces.dtype == np.int64
    np.testing.assert_allclose(body.vertices, BODY_V, atol=1e-6)
    np.testing.assert_array_equal(body.faces, BODY_F)
    assert body.landmarks == {}
    assert not any("is_watertight" in n for n in body.notes)
    assert any("rotation" in n for n in body.notes)


def test_uppercase_extension(tmp_path):
    path = write_mesh(tmp_path / "body.ply", BODY_V, BODY_F).rename(tmp_path / "BODY.PLY")
    np.testing.assert_allclose(load_body_mesh(path).vertices, BODY_V, atol=1e-6)


@pytest.mark.parametrize("unit,scale", [("cm", 100.0), ("mm", 1000.0)])
def test_units_detected_and_converted(tmp_path, unit, scale):
    path = write_mesh(tmp_path / f"body_{unit}.ply", BODY_V * scale, BODY_F)
    body = load_body_mesh(path)
    np.testing.assert_allclose(body.vertices, BODY_V, atol=1e-5)
    assert any(f"units: {unit} (auto" in n for n in body.notes)
    # explicit units give the same result
    np.testing.assert_allclose(load_body_mesh(path, units=unit).vertices, body.vertices)


def test_y_up_rotated_to_z_up(tmp_path):
    path = write_mesh(tmp_path / "yup.obj", to_y_up(BODY_V), BODY_F)
    body = load_body_mesh(path)
    extent = np.ptp(body.vertices, axis=0)
    assert extent[2] == pytest.approx(HEIGHT, abs=1e-6)
    assert extent[0] == pytest.approx(np.ptp(BODY_V[:, 0]), abs=1e-6)
    # the common Y-up convention maps exactly onto ours
    np.testing.assert_allclose(body.vertices, BODY_V, atol=1e-6)
    assert any("up: +y (auto" in n for n in body.notes)
    # a proper rotation: the surface keeps its outward winding
    assert trimesh.Trimesh(body.vertices, body.faces, process=False).volume > 0
    np.testing.assert_allclose(load_body_mesh(path, up="y").vertices, body.vertices)


def test_upside_down_is_flipped(tmp_path):
    flipped = BODY_V * np.array([1.0, -1.0, -1.0])  # half turn about X
    path = write_mesh(tmp_path / "flipped.ply", flipped, BODY_F)
    body = load_body_mesh(path)
    head = body.vertices[np.argmax(body.vertices[:, 2])]
    assert head[2] == pytest.approx(HEIGHT, abs=1e-6)
    np.testing.assert_allclose(body.vertices, BODY_V, atol=1e-6)
    assert any("up: -z (auto" in n for n in body.notes)


def test_x_up_in_mm(tmp_path):
    # up along -x, arms along z, in millimetres
    v = np.stack([-BODY_V[:, 2], BODY_V[:, 1], BODY_V[:, 0]], axis=1) * 1000
    body = load_body_mesh(write_mesh(tmp_path / "xup.off", v, BODY_F))
    np.testing.assert_allclose(np.ptp(body.vertices, axis=0), np.ptp(BODY_V, axis=0), atol=1e-5)
    assert body.vertices[:, 2].argmax() == BODY_V[:, 2].argmax()


def test_junk_vertices_removed(tmp_path):
    junk = np.array([[5.0, 5.0, 5.0], [0.1, 0.2, 0.3], [np.nan, 0.0, 0.0]])
    v = np.concatenate([junk, BODY_V])
    path = write_mesh(tmp_path / "junk.ply", v, BODY_F + len(junk))
    body = load_body_mesh(path)
    np.testing.assert_allclose(body.vertices, BODY_V, atol=1e-6)
    assert any("dropped 3 unreferenced vertices" in n for n in body.notes)


def test_duplicate_vertices_and_degenerate_faces_repaired(tmp_path):
    # a triangle soup (every face has its own vertices) with tiny noise, plus degenerate faces
    soup = BODY_V[BODY_F].reshape(-1, 3)
    soup = soup + np.random.default_rng(0).uniform(-1e-9, 1e-9, soup.shape)
    faces = np.arange(len(soup)).reshape(-1, 3)
    faces = np.concatenate([faces, [[0, 0, 1], [0, 1, 2]]])  # repeated vertex, duplicate face
    body = load_body_mesh(write_mesh(tmp_path / "soup.ply", soup, faces))
    assert len(body.vertices) == len(BODY_V)
    assert len(body.faces) == len(BODY_F)
    assert trimesh.Trimesh(body.vertices, body.faces, process=False).is_watertight
    text = " | ".join(body.notes)
    assert "merged" in text and "degenerate" in text and "duplicate faces" in text


def test_small_floating_component_removed(tmp_path):
    debris = trimesh.creation.box(extents=[0.05, 0.05, 0.05])
    v = np.concatenate([BODY_V, debris.vertices + [0.5, 0.5, 0.2]])
    f = np.concatenate([BODY_F, debris.faces + len(BODY_V)])
    body = load_body_mesh(write_mesh(tmp_path / "debris.obj", v, f))
    np.testing.assert_allclose(body.vertices, BODY_V, atol=1e-6)
    np.testing.assert_array_equal(body.faces, BODY_F)
    assert any("small connected component" in n for n in body.notes)


def test_two_bodies_refused(tmp_path):
    v = np.concatenate([BODY_V, BODY_V + [1.5, 0.0, 0.0]])
    f = np.concatenate([BODY_F, BODY_F + len(BODY_V)])
    assert_refused(write_mesh(tmp_path / "two.ply", v, f), "large connected components")


def test_fragmented_mesh_refused(tmp_path):
    v, f = [BODY_V], [BODY_F]
    n = len(BODY_V)
    for k in range(4):  # four pieces of 2-3% each
        piece = trimesh.creation.icosphere(subdivisions=1, radius=0.02)
        f.append(piece.faces + n)
        v.append(piece.vertices + [0.3 * k, 0.5, 0.5])
        n += len(piece.vertices)
    assert_refused(write_mesh(tmp_path / "frag.ply", np.concatenate(v), np.concatenate(f)), "fragmented")


def test_open_mesh_accepted_with_note(tmp_path):
    body = load_body_mesh(write_mesh(tmp_path / "open.ply", BODY_V, BODY_F[:-24]))  # no head cap
    assert any("is_watertight=False" in n for n in body.notes)


def test_missing_file(tmp_path):
    assert_refused(tmp_path / "nobody.obj", "file not found")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.ply"
    path.write_bytes(b"")
    assert_refused(path, "empty")


@pytest.mark.parametrize("ext", ["obj", "ply", "off"])
def test_garbage_bytes(tmp_path, ext):
    path = tmp_path / f"garbage.{ext}"
    path.write_bytes(np.random.default_rng(1).bytes(3000))
    assert_refused(path, "cannot read|no mesh data")


def test_point_cloud_has_no_faces(tmp_path):
    path = tmp_path / "cloud.ply"
    trimesh.PointCloud(BODY_V).export(path)
    assert_refused(path, "no faces")


def test_obj_without_faces(tmp_path):
    path = tmp_path / "points.obj"
    path.write_text("".join(f"v {x} {y} {z}\n" for x, y, z in BODY_V))
    assert_refused(path, "no faces")


def test_nan_coordinates(tmp_path):
    v = BODY_V.copy()
    v[5, 1] = np.nan
    path = tmp_path / "nan.obj"
    lines = [f"v {x} {y} {z}\n" for x, y, z in v] + [f"f {a + 1} {b + 1} {c + 1}\n" for a, b, c in BODY_F]
    path.write_text("".join(lines))
    assert_refused(path, "NaN")


def test_faces_out_of_range(tmp_path):
    path = tmp_path / "bad_index.off"
    path.write_text("OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 7\n")
    assert_refused(path, "cannot read|do not exist")


def test_absurd_scale(tmp_path):
    path = write_mesh(tmp_path / "giant.ply", BODY_V * (50.0 / HEIGHT), BODY_F)
    assert_refused(path, "absurd scale", units="m")
    assert_refused(path, "--units")  # auto cannot decide
    assert_refused(write_mesh(tmp_path / "inches.ply", BODY_V / 0.0254, BODY_F), "--units")
    assert_refused(write_mesh(tmp_path / "tiny.ply", BODY_V, BODY_F), "absurd scale", units="mm")


def test_unknown_extension(tmp_path):
    path = tmp_path / "body.stl"
    trimesh.Trimesh(BODY_V, BODY_F, process=False).export(path)
    assert_refused(path, "unsupported file type")


def test_t_pose_needs_explicit_up(tmp_path):
    v = BODY_V * np.array([HEIGHT / np.ptp(BODY_V[:, 0]), 1.0, 1.0])  # arm span == height
    path = write_mesh(tmp_path / "tpose.ply", v, BODY_F)
    assert_refused(path, "--up")
    body = load_body_mesh(path, up="z")
    assert np.ptp(body.vertices[:, 2]) == pytest.approx(HEIGHT)


def test_bad_arguments_are_plain_value_errors(tmp_path):
    path = write_mesh(tmp_path / "body.ply", BODY_V, BODY_F)
    for kwargs in ({"units": "inch"}, {"up": "w"}):
        with pytest.raises(ValueError) as info:
            load_body_mesh(path, **kwargs)
        assert not isinstance(info.value, MeshInputError)


# ----------------------------------------------------------------------------- landmarks

LANDMARKS = {"head_top": [0.0, 0.0, HEIGHT], "left_hand": [0.55, -0.03, 1.3], "crotch": [0.0, 0.0, 0.85]}


def test_landmarks_transformed_with_mesh(tmp_path):
    path = write_mesh(tmp_path / "scan_7.obj", to_y_up(BODY_V) * 100, BODY_F)
    file_lms = {k: (to_y_up(np.array(p)) * 100).tolist() for k, p in LANDMARKS.items()}
    (tmp_path / "scan_7.landmarks.json").write_text(json.dumps(file_lms))
    body = load_body_mesh(path, landmarks_path="auto", known_landmarks=list(LANDMARKS) + ["nose"])
    np.testing.assert_allclose(body.vertices, BODY_V, atol=1e-6)
    assert set(body.landmarks) == set(LANDMARKS)
    for name, p in LANDMARKS.items():
        np.testing.assert_allclose(body.landmarks[name], p, atol=1e-9)
    # without landmarks_path, landmark files are ignored
    assert load_body_mesh(path).landmarks == {}


def test_landmarks_plain_json_and_explicit_path(tmp_path):
    path = write_mesh(tmp_path / "s.ply", BODY_V, BODY_F)
    (tmp_path / "s.json").write_text(json.dumps(LANDMARKS))
    assert set(load_body_mesh(path, landmarks_path="auto").landmarks) == set(LANDMARKS)
    other = tmp_path / "elsewhere.json"
    other.write_text(json.dumps({"crotch": LANDMARKS["crotch"]}))
    assert set(load_body_mesh(path, landmarks_path=other).landmarks) == {"crotch"}
    assert_refused(path, "not found", landmarks_path=tmp_path / "missing.json")


def test_landmark_file_with_unknown_name(tmp_path):
    path = write_mesh(tmp_path / "s.ply", BODY_V, BODY_F)
    (tmp_path / "s.landmarks.json").write_text(json.dumps({**LANDMARKS, "elbow_tip": [0.5, 0, 1.3]}))
    err = assert_refused(path, "unknown landmarks", landmarks_path="auto", known_landmarks=list(LANDMARKS))
    assert "elbow_tip" in str(err)


@pytest.mark.parametrize(
    "text,match",
    [
        ('{"head_top": [0, 0, 1.7],', "not valid JSON"),
        ("[[0, 0, 1.7]]", "JSON object"),
        ('{"head_top": [0, 0]}', "head_top"),
        ('{"head_top": [0, "a", 1]}', "head_top"),
        ('{"head_top": [0, 0, 170]}', "outside the mesh"),  # wrong units
    ],
)
def test_bad_landmark_files(tmp_path, text, match):
    path = write_mesh(tmp_path / "s.ply", BODY_V, BODY_F)
    (tmp_path / "s.landmarks.json").write_text(text)
    assert_refused(path, match, landmarks_path="auto")


# ----------------------------------------------------------------------------- save / list


def test_save_body_mesh_roundtrip(tmp_path):
    out = tmp_path / "sub" / "saved.ply"
    save_body_mesh(out, BODY_V, BODY_F)
    assert out.read_bytes().startswith(b"ply\nformat binary_little_endian")
    assert [p.name for p in out.parent.iterdir()] == ["saved.ply"]  # no temporary left behind
    body = load_body_mesh(out)
    np.testing.assert_allclose(body.vertices, BODY_V, atol=1e-6)
    np.testing.assert_array_equal(body.faces, BODY_F)
    with pytest.raises(ValueError):
        save_body_mesh(tmp_path / "saved.obj", BODY_V, BODY_F)


def test_list_mesh_files(tmp_path):
    names = ["b.obj", "A.PLY", "c.off", "d.Obj", ".hidden.obj", ".x.1.tmp.ply", "e.tmp.obj", "f.txt", "g.stl"]
    for name in names:
        (tmp_path / name).write_text("x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "h.obj").write_text("x")
    (tmp_path / "dir.obj").mkdir()
    names = [p.name for p in list_mesh_files(tmp_path)]
    assert names == sorted(["b.obj", "A.PLY", "c.off", "d.Obj"])


def test_body_mesh_is_read_only():
    body = BodyMesh(BODY_V, BODY_F.astype(np.int32), "b", {"p": [0, 0, 1]}, ["n"])
    assert body.faces.dtype == np.int64 and body.notes == ("n",)
    with pytest.raises(ValueError):
        body.vertices[0, 0] = 1.0


@pytest.mark.parametrize("variant", ["y_up_cm", "upside_down_mm"])
def test_real_template_anatomy(tmp_path, variant):
    """The shipped A-pose template, exported in another frame and unit, comes back unchanged."""
    from bodyshape.shape.template import load_template

    template = load_template()
    v = template.vertices
    v_file = to_y_up(v) * 100 if variant == "y_up_cm" else v * np.array([1.0, -1.0, -1.0]) * 1000
    body = load_body_mesh(write_mesh(tmp_path / f"{variant}.ply", v_file, template.faces))
    np.testing.assert_allclose(body.vertices, v, atol=1e-6)
    np.testing.assert_array_equal(body.faces, template.faces)
