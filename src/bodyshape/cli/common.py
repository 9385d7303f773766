"""Helpers shared by the command modules: errors, option parsers, shared options, defaults.

``fail`` is the one way a command reports a usage error (one ``error: ...`` line on stderr,
exit status 2) and ``reject`` an input the library refused (exit status 3); the exit
statuses are ``EXIT_*`` below (docs/PREDICT.md, *Exit status*). ``default_of`` reads an
option's default from the library's own config dataclass or function signature, lazily, so
that ``bodyshape --help`` does not import torch and no default number is copied into the
CLI.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
import logging
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from bodyshape.assets import DEFAULT_CHECKPOINT, DEFAULT_SHAPE_MODEL


EXIT_OK = 0
EXIT_PARTIAL = 1  # a batch finished, but some of its items failed (each reported)
EXIT_USAGE = 2  # bad or missing options, files or folders (click's own usage errors too)
EXIT_REJECTED = 3  # an input the library refused: unusable photo, mask or image
EXIT_INTERNAL = 4  # an unexpected failure (a bug): one line; -v shows the traceback


def fail(message: str, status: int = EXIT_USAGE) -> NoReturn:
    """Print ``error: MESSAGE`` on one line to stderr and exit with ``status`` (2: usage)."""
    click.echo(f"error: {message}", err=True)
    sys.exit(status)


def reject(message: str) -> NoReturn:
    """An input the library refused: ``error: MESSAGE`` on stderr, exit status 3."""
    fail(message, EXIT_REJECTED)


def setup_logging(verbose: int) -> None:
    """Log warnings; -v adds info, -vv debug."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


def parse_range(text: str) -> tuple[float, float]:
    """``"20-70"`` -> ``(20.0, 70.0)``; a click.BadParameter otherwise."""
    try:
        lo, hi = (float(x) for x in text.split("-"))
    except ValueError:
        raise click.BadParameter(f"expected MIN-MAX, got {text!r}") from None
    return lo, hi


class default_of:  # noqa: N801 - used like a function in option declarations
    """The default of ``name`` in ``target``, looked up only when click needs it.

    ``target`` is ``"module:attr"``: a dataclass (its field's default or default factory)
    or a function (its keyword's default). ``name`` may be dotted to reach into a nested
    default, e.g. ``default_of("bodyshape.synth.generate:SynthSpec",
    "calibration.canvas_width")``. Pass it as a click ``default=``: click calls it when
    the option is not given, and ``--help`` shows its value (``str``), so the module that
    defines it is imported only by the command that uses it.
    """

    def __init__(self, target: str, name: str):
        self.target, self.name = target, name

    @functools.cached_property
    def value(self) -> Any:
        module, _, attr = self.target.partition(":")
        obj = getattr(importlib.import_module(module), attr)
        first, *rest = self.name.split(".")
        if dataclasses.is_dataclass(obj):
            field = {f.name: f for f in dataclasses.fields(obj)}[first]
            if field.default is not dataclasses.MISSING:
                value = field.default
            elif field.default_factory is not dataclasses.MISSING:
                value = field.default_factory()
            else:
                raise TypeError(f"{self.target}.{first} has no default")
        else:
            value = inspect.signature(obj).parameters[first].default
            if value is inspect.Parameter.empty:
                raise TypeError(f"{self.target}({first}=...) has no default")
        for part in rest:
            value = getattr(value, part)
        return value

    def __call__(self) -> Any:
        return self.value

    def __str__(self) -> str:  # what --help shows
        return str(self.value)

    def __bool__(self) -> bool:  # --help of a --x/--no-x flag shows the default side
        return bool(self.value)

    def __repr__(self) -> str:
        return f"default_of({self.target!r}, {self.name!r})"


def shape_model_option(help: str = "PCA shape model (.npz).", **kwargs):  # noqa: A002
    """``--shape-model FILE``, default the shipped model."""
    return click.option("--shape-model", type=click.Path(dir_okay=False, path_type=Path),
                        default=DEFAULT_SHAPE_MODEL, show_default=True, help=help, **kwargs)


def checkpoint_option(help: str = "Network checkpoint.", param: str = "ckpt"):  # noqa: A002
    """``--model FILE`` (a network checkpoint), default the shipped network."""
    return click.option("--model", param, type=click.Path(dir_okay=False, path_type=Path),
                        default=DEFAULT_CHECKPOINT, show_default=True, help=help)


def device_option():
    """``--device auto|cpu|cuda|mps`` (``bodyshape.device``); the value is the name."""
    return click.option("--device", type=click.Choice(["auto", "cpu", "cuda", "mps"]),
                        default="auto", show_default=True,
                        help="Where the network runs: auto takes a GPU (CUDA, then MPS) when "
                             "there is one, else the CPU.")


def open_device(name: str):
    """``--device`` value -> torch.device, or a one-line failure."""
    from bodyshape.device import resolve_device

    try:
        return resolve_device(name)
    except ValueError as exc:
        fail(str(exc))


def require_files(ckpt: Path, shape_model: Path) -> None:
    """Fail unless the checkpoint and the shape model exist (before any slow load)."""
    for path, what in ((ckpt, "network checkpoint"), (shape_model, "shape model")):
        if not path.is_file():
            fail(f"{what} not found: {path}" + (
                " (train one with scripts/train_default.sh)" if path == DEFAULT_CHECKPOINT
                else ""))


def load_shape_model(path: Path):
    """The ShapeModel at ``path``, or a one-line failure naming the file."""
    from bodyshape.shape.pca import ShapeModel

    if not path.is_file():
        fail(f"shape model not found: {path}")
    try:
        return ShapeModel.load(path)
    except Exception as exc:  # corrupt npz: one line naming the file
        fail(f"cannot load shape model {path}: {exc}")


def units_option():
    """``--units cm|in``: the unit of the printed and written measurements."""
    return click.option("--units", type=click.Choice(["cm", "in"]), default="cm",
                        show_default=True,
                        help="Unit of the printed measurements and of measurements.json "
                        "(names end in _cm or _in).")


def size_chart_option():
    """``--size-chart CHART`` (repeatable): a chart CSV or the name of a shipped chart."""
    return click.option("--size-chart", "size_charts", multiple=True, metavar="CHART",
                        help="Recommend a size from this chart: a CSV file (docs/SIZING.md) "
                        "or a shipped chart (womens_tops, womens_bottoms, mens_tops, "
                        "mens_bottoms). Repeatable.")


def load_charts(names) -> tuple:
    """Parse every ``--size-chart`` given (before any slow load), or fail with one line."""
    from bodyshape.sizing import ChartError, load_chart

    try:
        return tuple(load_chart(n) for n in names)
    except ChartError as exc:
        fail(str(exc))
