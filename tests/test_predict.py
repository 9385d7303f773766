"""Prediction: masks and photos in, mesh/measurements/overlay out; every bad input refused.

Uses the tiny fusion network of conftest (4-component model, 64 px canvas): the accuracy is
meaningless, the code paths are the real ones.
"""

from __future__ import annotations

import dataclasses

import json

import cv2
import numpy as np
import pytest
import trimesh
from click.testing import CliRunner
from PIL import Image

from bodyshape.cli import main
from bodyshape.inputs import TOE_CUE_MIN, InputError, load_image, toe_cue
from bodyshape.measure import MEASUREMENT_NAMES
from bodyshape.outputs import write_prediction, y_up
from bodyshape.predict import Predictor
from bodyshape.render.photo import photo_camera, render_photo
from bodyshape.render.raster import silhouette
from bodyshape.segment import PhotoError

W, H = 480, 640


@pytest.fixture(scope="module")
def predictor(branches, small_model_path):
    p = Predictor.load(branches["fusion"], small_model_path)
    yield p
    p.close()


@pytest.fixture(scope="module")
def inputs(data, tmp_path_factory):
    """Masks and photos of the small model's mean body: front, side facing right/left."""
    _, model = data
    folder = tmp_path_factory.mktemp("inputs")
    body = model.shape.mean.astype(np.float64)
    views = {"front": body, "side": model.turn(body, np.pi / 2),
             "side_left": model.turn(body, -np.pi / 2)}
    for name, verts in views.items():
        cam = photo_camera(verts, W, H)
        mask = silhouette(verts, model.faces, cam)
        cv2.imwrite(str(folder / f"{name}_mask.png"), mask.astype(np.uint8) * 255)
        photo = render_photo(model, verts, cam, np.random.default_rng(0)).image
        cv2.imwrite(str(folder / f"{name}.jpg"), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
    return folder


def test_masks_to_outputs(predictor, inputs, tmp_path):
    pred = predictor(inputs / "front_mask.png", inputs / "side_mask.png", 165.0, "female")
    assert set(pred.measurements) == set(MEASUREMENT_NAMES)
    assert pred.measurements["height_cm"] == pytest.approx(165.0, abs=0.2)
    assert 0.5 < pred.front.iou <= 1 and 0.5 < pred.side.iou <= 1
    assert not pred.side.mirrored
    out = write_prediction(pred, tmp_path / "out")
    names = sorted(p.name for p in out.iterdir())
    assert names == ["body.glb", "body.obj", "measurements.json", "overlay.png", "shape.json"]
    assert pred.front.parts is None  # masks carry no landmarks
    m = json.loads((out / "measurements.json").read_text())
    assert set(m["measurements"]) == set(MEASUREMENT_NAMES)
    assert set(m["quality"]) == {"iou_front", "iou_side", "warnings", "fit_pose"}
    assert m["quality"]["fit_pose"] == "canonical A-pose"
    shape = json.loads((out / "shape.json").read_text())
    assert shape["n_components"] == 4 and shape["shape_model_hash"] == pred.shape_model_hash
    assert shape["pose_deg"] is None
    assert pred.errors_cm == {} and m["errors"] == {}  # not the measured shipped network
    obj = trimesh.load(out / "body.obj", process=False)
    assert len(obj.vertices) == len(pred.vertices)
    # Y up by default, facing +Z: (x, y, z) of anny's axes -> (x, z, -y)
    np.testing.assert_allclose(obj.vertices, y_up(pred.vertices), atol=1e-5)
    assert np.ptp(obj.vertices[:, 1]) == pytest.approx(1.65, abs=0.01)
    glb = trimesh.load(out / "body.glb", force="mesh", process=False)
    assert len(glb.vertices) == len(pred.vertices)
    assert np.ptp(glb.vertices[:, 1]) == pytest.approx(1.65, abs=0.01)  # Y up in glTF
    assert cv2.imread(str(out / "overlay.png")).shape[0] == 640
    zup = write_prediction(pred, tmp_path / "zup", obj_up="z", units="in")
    np.testing.assert_allclose(trimesh.load(zup / "body.obj", process=False).vertices,
                               pred.vertices, atol=1e-5)
    inches = json.loads((zup / "measurements.json").read_text())
    assert inches["units"] == "in"
    assert inches["measurements"]["chest_in"] == pytest.approx(
        pred.measurements["chest_cm"] / 2.54, abs=0.05)
    assert inches == pred.to_dict("in")
    for bad in ({"units": "mm"}, {"obj_up": "x"}):
        with pytest.raises(ValueError):
            write_prediction(pred, tmp_path / "bad", **bad)
    assert not (tmp_path / "bad").exists()


def test_side_facing_either_way_gives_the_same_body(predictor, inputs):
    right = predictor(inputs / "front_mask.png", inputs / "side_mask.png", 170.0)
    left = predictor(inputs / "front_mask.png", inputs / "side_left_mask.png", 170.0)
    assert left.side.mirrored and not right.side.mirrored
    np.testing.assert_allclose(left.coeffs, right.coeffs, atol=0.02 * np.abs(right.coeffs).max()
                               + 1e-6)


def test_toe_cue_tells_a_side_mask_facing(inputs):
    masks = {n: cv2.imread(str(inputs / f"{n}_mask.png"), cv2.IMREAD_GRAYSCALE) > 0
             for n in ("side", "side_left", "front")}
    assert toe_cue(masks["side"]) > TOE_CUE_MIN  # canonical facing: toes towards +x
    assert toe_cue(masks["side_left"]) < -TOE_CUE_MIN
    assert toe_cue(masks["side"]) == pytest.approx(-toe_cue(masks["side"][:, ::-1]))
    assert abs(toe_cue(masks["front"])) < TOE_CUE_MIN  # symmetric: no facing
    assert toe_cue(np.zeros((8, 8), bool)) == 0.0


def test_ambiguous_feet_fall_back_to_trying_both_facings(predictor, inputs, monkeypatch):
    import bodyshape.inputs as inputs_module

    monkeypatch.setattr(inputs_module, "TOE_CUE_MIN", np.inf)  # never trust the feet
    left = predictor(inputs / "front_mask.png", inputs / "side_left_mask.png", 170.0)
    right = predictor(inputs / "front_mask.png", inputs / "side_mask.png", 170.0)
    assert left.side.mirrored and not right.side.mirrored


def test_photos_run_through_segmentation(predictor, inputs):
    pytest.importorskip("mediapipe")
    pred = predictor(inputs / "front.jpg", inputs / "side_left.jpg", 170.0)
    assert pred.side.mirrored  # facing from the pose landmarks
    assert pred.front.mask.shape == (H, W) and pred.front.mask.mean() > 0.05
    # Part labels from MediaPipe's landmarks, on the canvas mask; drawn into the overlay.
    from bodyshape.outputs import overlay_image
    from bodyshape.parts import PART_NAMES

    for fit in (pred.front, pred.side):
        assert fit.parts.shape == fit.calibrated.image.shape
        assert ((fit.parts > 0) == (fit.calibrated.image >= 0.5)).mean() > 0.99
    assert {PART_NAMES[k] for k in np.unique(pred.front.parts)} >= {
        "head", "torso", "upper_arm_l", "upper_arm_r", "upper_leg_l", "lower_leg_r"}
    with_parts = overlay_image(pred)
    plain = overlay_image(dataclasses.replace(pred, front=dataclasses.replace(
        pred.front, parts=None), side=dataclasses.replace(pred.side, parts=None)))
    assert with_parts.shape == plain.shape and not np.array_equal(with_parts, plain)


def test_photo_pose_fit_starts_from_the_landmarks(predictor, inputs, caplog):
    """Without pose heads, a photo's front arms start the pose fit at the abduction read
    off MediaPipe's landmarks (the A-pose here), recorded as the pose source."""
    pytest.importorskip("mediapipe")
    with caplog.at_level("INFO", logger="bodyshape.predict"):
        pred = predictor(inputs / "front.jpg", inputs / "side_left.jpg", 170.0, fit_pose=True)
    assert pred.pose_source == "fitted-keypoints"
    assert pred.to_dict()["quality"]["fit_pose"] == "fitted"
    line = next(r.getMessage() for r in caplog.records if "(landmarks)" in r.getMessage())
    start = [float(x) for x in line.split(" at ")[1].split(" deg")[0].split("/")]
    rest = np.degrees(predictor.body.rig.rest_arm_angle)
    np.testing.assert_allclose(start, rest, atol=10.0)


@pytest.mark.parametrize("fmt", ["png", "jpg"])
@pytest.mark.parametrize("orientation, turns", [(6, -1), (8, 1)])
def test_exif_orientation_is_honoured(tmp_path, fmt, orientation, turns):
    """EXIF 6: the stored pixels are shown turned 90 degrees clockwise (np.rot90 k=-1);
    8: counter-clockwise (k=1). An asymmetric image tells the directions apart."""
    stored = np.zeros((64, 96, 3), np.uint8)  # 64 rows x 96 columns, nothing symmetric
    stored[:32, :48] = (250, 0, 0)  # top left red
    stored[:32, 48:] = (0, 250, 0)  # top right green
    stored[32:, :48] = (0, 0, 250)  # bottom left blue
    stored[32:, 72:] = (250, 250, 250)  # bottom half: right quarter white, [48:72] black
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"exif.{fmt}"
    Image.fromarray(stored).save(path, exif=exif, **({"quality": 95} if fmt == "jpg" else {}))
    got = load_image(path)
    want, wrong = np.rot90(stored, k=turns), np.rot90(stored, k=-turns)
    assert got.shape == want.shape == (96, 64, 3)
    error = np.abs(got.astype(int) - want).mean()
    if fmt == "png":
        assert error == 0
    else:  # lossy: close to the right turn, far from the wrong one
        assert error < 5 < np.abs(got.astype(int) - wrong).mean()


def test_bad_inputs_are_refused_with_one_line(predictor, inputs, tmp_path):
    f, s = inputs / "front_mask.png", inputs / "side_mask.png"
    (tmp_path / "text.jpg").write_text("not an image")
    good = (inputs / "front.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(good[: len(good) // 3])
    cv2.imwrite(str(tmp_path / "grey.png"), np.full((64, 48, 3), 128, np.uint8))
    cases = [
        ((tmp_path / "none.jpg", s, 170), "not found"),
        ((tmp_path / "text.jpg", s, 170), "not a readable image"),
        ((tmp_path / "cut.jpg", s, 170), "not a readable image"),
        ((tmp_path / "grey.png", s, 170), "single colour"),
        ((f, s, 30), "outside 50-250"),
        ((f, s, 300), "outside 50-250"),
        ((f, s, "tall"), "number of centimeters"),
        ((s, f, 170), "swapped"),
    ]
    for args, message in cases:
        with pytest.raises(ValueError, match=message):
            predictor(*args)
    with pytest.raises(InputError, match="sex"):
        predictor(f, s, 170, "other")


def test_photo_problems(predictor, inputs, tmp_path):
    pytest.importorskip("mediapipe")
    with pytest.raises(PhotoError, match="side"):  # a front photo given as the side view
        predictor(inputs / "front.jpg", inputs / "front.jpg", 170)
    blank = np.full((H, W, 3), 200, np.uint8)
    blank[::7] = 190  # not one colour, but nobody in it
    cv2.imwrite(str(tmp_path / "empty.png"), blank)
    with pytest.raises(PhotoError, match="[Nn]o person"):
        predictor(tmp_path / "empty.png", inputs / "side.jpg", 170, masks=False)


def test_cli_single_pair_and_errors(branches, small_model_path, inputs, tmp_path):
    run = CliRunner().invoke
    base = ["predict", "--model", str(branches["fusion"]), "--shape-model",
            str(small_model_path)]
    res = run(main, base + ["--front", str(inputs / "front_mask.png"), "--side",
                            str(inputs / "side_mask.png"), "--height-cm", "172",
                            "--out", str(tmp_path / "p")])
    assert res.exit_code == 0, res.output
    assert "chest" in res.output and (tmp_path / "p" / "overlay.png").is_file()
    res = run(main, base + ["--front", str(inputs / "front_mask.png"), "--side",
                            str(inputs / "side_mask.png"), "--height-cm", "20",
                            "--out", str(tmp_path / "q")])
    assert res.exit_code == 2 and "outside" in res.output and not (tmp_path / "q").exists()
    (tmp_path / "keep").mkdir()
    (tmp_path / "keep" / "precious.txt").write_text("x")
    res = run(main, base + ["--front", str(inputs / "front_mask.png"), "--side",
                            str(inputs / "side_mask.png"), "--height-cm", "172",
                            "--out", str(tmp_path / "keep")])
    assert res.exit_code == 2 and (tmp_path / "keep" / "precious.txt").exists()
    res = run(main, base + ["--front", str(inputs / "front_mask.png")])
    assert res.exit_code == 2 and "--height-cm" in res.output
    # Exit status 3: an input the predictor refuses (a one-colour image), nothing written.
    Image.new("RGB", (64, 64), (9, 9, 9)).save(tmp_path / "flat.png")
    res = run(main, base + ["--front", str(tmp_path / "flat.png"), "--side",
                            str(inputs / "side_mask.png"), "--height-cm", "172",
                            "--out", str(tmp_path / "r")])
    assert res.exit_code == 3 and "single colour" in res.output
    assert not (tmp_path / "r").exists()
    res = run(main, base + ["--front", str(tmp_path / "missing.png"), "--side",
                            str(inputs / "side_mask.png"), "--height-cm", "172"])
    assert res.exit_code == 2 and "does not exist" in res.output


def test_cli_units_axes_and_sizes(branches, small_model_path, inputs, tmp_path):
    base = ["predict", "--model", str(branches["fusion"]), "--shape-model",
            str(small_model_path), "--front", str(inputs / "front_mask.png"), "--side",
            str(inputs / "side_mask.png"), "--height-cm", "172"]
    res = CliRunner().invoke(main, base + ["--units", "in", "--size-chart", "womens_tops",
                                           "--size-chart", "mens_bottoms", "--out",
                                           str(tmp_path / "p")])
    assert res.exit_code == 0, res.output
    assert "height:   67.7 in" in res.output and "size womens_tops:" in res.output
    m = json.loads((tmp_path / "p" / "measurements.json").read_text())
    assert m["units"] == "in" and "chest_in" in m["measurements"]
    assert [s["garment"] for s in m["sizes"]] == ["womens_tops", "mens_bottoms"]
    assert m["sizes"][0]["fits"][0]["measurement"] == "chest_in"
    assert m["sizes"][0]["confidence"] is None  # the tiny network's errors are unknown
    res = CliRunner().invoke(main, base + ["--size-chart", "nope", "--out",
                                           str(tmp_path / "q")])
    assert res.exit_code == 2 and "no such size chart" in res.output
    assert not (tmp_path / "q").exists()


def test_cli_batch_skips_bad_rows(branches, small_model_path, inputs, tmp_path):
    csv_path = inputs / "pairs.csv"
    csv_path.write_text("id,front,side,height_cm,sex\n"
                        "a,front_mask.png,side_mask.png,170,female\n"
                        "b,front_mask.png,missing.png,170,\n"
                        "c,front_mask.png,side_left_mask.png,181,male\n"
                        "../d,front_mask.png,side_mask.png,170,\n")
    res = CliRunner().invoke(main, ["predict", "--model", str(branches["fusion"]),
                                    "--shape-model", str(small_model_path), "--batch",
                                    str(csv_path), "--out", str(tmp_path / "batch")])
    assert res.exit_code == 1
    assert "2 of 4 pairs done" in res.output and "failed: b, ../d" in res.output
    assert sorted(p.name for p in (tmp_path / "batch").iterdir()) == ["a", "c"]


def test_shipped_example_end_to_end(tmp_path):
    """The README's main command: the shipped network on the shipped example photos."""
    from bodyshape.assets import DEFAULT_CHECKPOINT

    pytest.importorskip("mediapipe")
    # The network ships with the package: missing, it is a broken install, not a skip.
    assert DEFAULT_CHECKPOINT.is_file(), \
        f"shipped network missing: {DEFAULT_CHECKPOINT} (scripts/train_default.sh makes it)"
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    res = CliRunner().invoke(main, ["predict", "--front", str(root / "examples/front.jpg"),
                                    "--side", str(root / "examples/side.jpg"),
                                    "--height-cm", "171.3", "--out", str(tmp_path / "p")])
    assert res.exit_code == 0, res.output
    m = json.loads((tmp_path / "p" / "measurements.json").read_text())
    assert m["measurements"]["height_cm"] == pytest.approx(171.3, abs=0.2)
    assert 60 < m["measurements"]["chest_cm"] < 140
    assert m["quality"]["iou_front"] > 0.8 and m["quality"]["iou_side"] > 0.8
    # The same measurements as the shipped network gave when the pin was written, to 0.1 cm
    # (tools/make_example_reference.py, rerun only when the shipped network changes).
    from bodyshape.accuracy import weights_hash
    from bodyshape.checkpoint import load_checkpoint

    ref = json.loads((root / "tests/data/example_measurements_reference.json").read_text())
    assert ref["weights_sha256"] == weights_hash(load_checkpoint(DEFAULT_CHECKPOINT).model), \
        "the pin is of another network: run tools/make_example_reference.py after retraining"
    for name, value in ref["measurements"].items():
        assert m["measurements"][name] == pytest.approx(value, abs=0.1), name


@pytest.fixture(scope="module")
def posed_inputs(data, tmp_path_factory):
    """Masks of the small model's mean body posed as people pose for each photo: arms raised
    to 62 deg and legs apart in the front view, arms hanging (10 deg) in the side view."""
    from bodyshape.body import POSE_NAMES

    _, model = data
    angles = np.zeros((2, len(POSE_NAMES)))
    angles[0, :2], angles[1, :2] = np.radians(62.0), np.radians(10.0)
    angles[0, POSE_NAMES.index("leg_spread_l")] = angles[0, POSE_NAMES.index("leg_spread_r")] \
        = np.radians(5.0)
    folder = tmp_path_factory.mktemp("posed")
    for v, (name, yaw) in enumerate((("front", 0.0), ("side", np.pi / 2))):
        posed = model.pose(model.shape.mean.astype(np.float64), angles[v])
        verts = model.turn(posed, yaw)
        mask = silhouette(verts, model.faces, photo_camera(verts, W, H))
        cv2.imwrite(str(folder / f"{name}.png"), mask.astype(np.uint8) * 255)
    return folder


def test_pose_fit_explains_a_posed_body_and_keeps_the_shape(predictor, posed_inputs, tmp_path):
    from bodyshape.body import POSE_NAMES

    args = (posed_inputs / "front.png", posed_inputs / "side.png", 170.0)
    plain = predictor(*args)
    fitted = predictor(*args, fit_pose=True)
    assert plain.pose_angles is None and fitted.pose_angles.shape == (2, len(POSE_NAMES))
    assert fitted.front.iou > plain.front.iou + 0.02  # the raised arms are explained
    assert fitted.front.iou + fitted.side.iou > plain.front.iou + plain.side.iou
    arms = np.degrees(fitted.pose_angles[0, :2])  # each view has its own pose
    rest_arms = predictor.body.rig.rest_arm_angle
    assert np.all(np.abs(arms - 62.0) < np.abs(np.degrees(rest_arms) - 62.0))
    assert np.all(np.degrees(fitted.pose_angles[1, :2]) < arms)  # hanging in the side view
    np.testing.assert_array_equal(fitted.coeffs, plain.coeffs)  # shape untouched
    assert fitted.measurements == plain.measurements
    out = write_prediction(fitted, tmp_path / "out")
    m = json.loads((out / "measurements.json").read_text())
    assert m["quality"]["fit_pose"] == "fitted"
    pose = json.loads((out / "shape.json").read_text())["pose_deg"]
    assert set(pose) == {"front", "side"} and set(pose["front"]) == set(POSE_NAMES)


def test_refinement_does_not_lower_the_fit(predictor, inputs):
    plain = predictor(inputs / "front_mask.png", inputs / "side_mask.png", 170.0,
                      fit_pose=True)
    refined = predictor(inputs / "front_mask.png", inputs / "side_mask.png", 170.0,
                        refine=True)
    assert refined.front.iou + refined.side.iou >= plain.front.iou + plain.side.iou - 0.02
    assert refined.measurements["height_cm"] == pytest.approx(170.0, abs=0.2)
    assert refined.pose_angles is not None
