"""The ``bodyshape`` command line: the only code that imports every stage.

``main`` is the click group (the ``bodyshape`` console script); its commands live one
module per stage (``shape``, ``synth``, ``learn``, ``predict``, ``serve``), and the helpers
they share (``fail``, shared options, config-derived defaults) in ``common``. Each command
parses its options, calls one library function and reports; no logic lives here. Heavy
imports (torch, the stages) happen inside the commands, so ``bodyshape --help`` is quick.
"""

from __future__ import annotations

import click

from bodyshape.cli import learn, predict, serve, shape, synth
from bodyshape.cli.common import setup_logging

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
@click.version_option(package_name="bodyshape")
def main(verbose: int) -> None:
    """bodyshape: 3D body shape and tape measurements from a front and a side photo."""
    setup_logging(verbose)


for _stage in (shape, synth, learn, predict, serve):
    for _command in _stage.COMMANDS:
        main.add_command(_command)
