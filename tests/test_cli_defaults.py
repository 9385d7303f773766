"""The CLI's option defaults come from the library, and ``bodyshape --help`` stays light."""

import subprocess
import sys

import click

from bodyshape.cli import main
from bodyshape.cli.common import default_of


def _params(cmd, path=()):
    for p in cmd.params:  # a group's own options too (``synth`` runs without a subcommand)
        yield path, p
    if isinstance(cmd, click.Group):
        for name, sub in cmd.commands.items():
            yield from _params(sub, path + (name,))


def test_every_config_default_resolves():
    """Each lazily read default names an existing dataclass field or keyword argument."""
    lazy = [(path, p) for path, p in _params(main) if isinstance(p.default, default_of)]
    assert {path[0] for path, _ in lazy} >= {"train", "synth", "serve"}
    for path, p in lazy:
        value = p.default()
        assert value is not None, (path, p.name)
        assert p.type_cast_value(click.Context(main), value) == value, (path, p.name)


def test_train_defaults_are_train_config():
    from bodyshape.train import TrainConfig

    cfg = TrainConfig(stage="front")
    train = main.commands["train"]
    ctx = train.make_context("train", ["--stage", "front", "--data", "d", "--out", "o"])
    for name in ("epochs", "batch_size", "lr", "iou_weight", "iou_samples", "iou_size",
                 "pca_init", "branch_mode", "branch_lr_scale", "augment", "seed", "max_steps",
                 "parts", "weight_input", "pose_weight", "girth_weight", "girth_start"):
        assert ctx.params[name] == getattr(cfg, name), name


def test_cli_import_is_light():
    code = ("import sys, bodyshape.cli; "
            "heavy = {'torch', 'numba', 'scipy', 'cv2'} & set(sys.modules); "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_every_option_has_help():
    missing = [(" ".join(path), p.name) for path, p in _params(main)
               if isinstance(p, click.Option) and not (p.help or "").strip()]
    assert missing == []


def test_build_shape_model_never_overwrites_the_packaged_model_unless_forced():
    from click.testing import CliRunner

    from bodyshape.assets import DEFAULT_SHAPE_MODEL

    before = DEFAULT_SHAPE_MODEL.stat().st_mtime_ns
    r = CliRunner().invoke(main, ["build-shape-model", "--out", str(DEFAULT_SHAPE_MODEL)])
    assert r.exit_code == 2 and "packaged shape model" in r.output and "--force" in r.output
    assert DEFAULT_SHAPE_MODEL.stat().st_mtime_ns == before
    ctx = main.commands["build-shape-model"].make_context("build-shape-model", [])
    assert ctx.params["out"] is None and ctx.params["force"] is False  # WORK/shape_model.npz


def test_unexpected_errors_are_one_line_with_status_4(monkeypatch):
    from click.testing import CliRunner

    from bodyshape.cli.common import EXIT_INTERNAL
    from bodyshape.shape import pca

    def boom(*a, **k):
        raise RuntimeError("disk on fire\nsecond line")

    monkeypatch.setattr(pca.ShapeModel, "load", boom)
    r = CliRunner().invoke(main, ["pca", "summary"])
    assert r.exit_code == EXIT_INTERNAL
    assert r.output == ("error: internal error: RuntimeError: disk on fire (rerun with -vv "
                        "for the traceback; please report it)\n")
