"""Fixtures shared by several test modules."""

import pytest

from bodyshape.body import BodyModel
from bodyshape.shape.template import load_template


@pytest.fixture(scope="session")
def body():
    """The shipped body model (template, rig, coarse mesh, shape model)."""
    return BodyModel.load()


@pytest.fixture(scope="module")
def rig(body):
    return body.rig


@pytest.fixture(scope="module")
def tpl():
    return load_template()


@pytest.fixture(scope="session")
def small_model_path(tmp_path_factory):
    """A 4-component shape model fitted on smooth variations of the template (no anny)."""
    import numpy as np

    from bodyshape.shape.pca import ShapeModel

    tpl = load_template()
    rng = np.random.default_rng(0)
    v = tpl.vertices
    bodies = []
    for _ in range(12):
        w = v * (1 + 0.05 * rng.standard_normal(3))
        w[:, 1] -= 0.02 * rng.standard_normal() * np.exp(-((v[:, 2] - 0.1) ** 2) / 0.01) \
            * (v[:, 1] < 0)
        bodies.append(w)
    model = ShapeModel.fit(np.stack(bodies).astype(np.float32), tpl.faces, tpl.hash,
                           n_components=4)
    path = tmp_path_factory.mktemp("model") / "model.npz"
    model.save(path)
    return path


# Tiny networks and datasets shared by the training and prediction tests: a 4-component
# template model, 24 samples on a 64 px canvas, so every code path runs in seconds.
SMALL = dict(
    encoder=None, head=None, fusion_head=None, batch_size=8, val_samples=8, loader_workers=0,
    iou_samples=4, iou_size=32)


def _small_cfg():
    from bodyshape.nets import EncoderConfig, HeadConfig

    SMALL.update(encoder=EncoderConfig(widths=(8, 16, 16, 32), feature_dim=32),
                 head=HeadConfig((32, 16)), fusion_head=HeadConfig((16,)))


_small_cfg()


@pytest.fixture(scope="module")
def data(small_model_path, tmp_path_factory):
    from bodyshape.calibrate import CalibrationSpec
    from bodyshape.render.camera import CameraSpec
    from bodyshape.synth.generate import SynthSpec
    from bodyshape.synth.shards import write_dataset

    spec = SynthSpec(camera=CameraSpec(long_side=256), calibration=CalibrationSpec(64, 64))
    root = tmp_path_factory.mktemp("data")
    write_dataset(small_model_path, root / "train", 24, 0, spec, shard_size=8, progress=False)
    write_dataset(small_model_path, root / "val", 8, 999, spec, shard_size=8, progress=False)
    return root, BodyModel.load(small_model_path)


@pytest.fixture(scope="module")
def branches(data, tmp_path_factory):
    from bodyshape.train import StageData, TrainConfig, train_stage

    root, small_body = data
    out = tmp_path_factory.mktemp("runs")
    paths = {}
    for stage in ("front", "side"):
        paths[stage] = train_stage(TrainConfig(stage=stage, epochs=1, **SMALL),
                                   StageData(root / "train", root / "val", small_body),
                                   out / stage, progress=False)
    paths["fusion"] = train_stage(TrainConfig(stage="fusion", epochs=1, **SMALL),
                                  StageData(root / "train", None, small_body, paths["front"],
                                            paths["side"]), out / "fusion", progress=False)
    return paths


def dataset_files(folder) -> dict[str, bytes]:
    """A synth folder's files by name (shards, config, final manifest; not the part
    manifests, which differ between a split run and a single one)."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())
            if not p.name.startswith("manifest.part")}


@pytest.fixture(autouse=True)
def _outside_job_arrays(monkeypatch):
    """Tests behave the same inside a Slurm job array (``bodyshape synth`` would otherwise
    make only the task's part)."""
    monkeypatch.delenv("SLURM_ARRAY_TASK_ID", raising=False)
