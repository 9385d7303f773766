"""The ``bodyshape`` command line: the only code that imports every stage.

``main`` is the click group (the ``bodyshape`` console script); its commands live one
module per stage (``shape``, ``synth``, ``learn``, ``predict``, ``size``, ``serve``), and the
helpers they share (``fail``, exit statuses, shared options, config-derived defaults) in
``common``. Each command parses its options, calls one library function and reports; no
logic lives here. Heavy imports (torch, the stages) happen inside the commands, so
``bodyshape --help`` is quick. An unexpected exception ends the command with one line and
exit status 4 (``common.EXIT_INTERNAL``); ``-v`` adds its traceback.
"""

from __future__ import annotations

import logging

import click

from bodyshape.cli import learn, predict, serve, shape, size, synth
from bodyshape.cli.common import EXIT_INTERNAL, fail, setup_logging
from bodyshape.extras import MissingExtra

__all__ = ["main"]

logger = logging.getLogger("bodyshape.cli")


class _Group(click.Group):
    """A click group that turns an unexpected exception into one line (exit status 4)."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except KeyboardInterrupt:
            fail("interrupted", 130)
        except MissingExtra as exc:  # an optional dependency group is not installed
            fail(str(exc))
        except Exception as exc:  # noqa: BLE001 - the one place bugs are reported
            logger.debug("unexpected failure", exc_info=True)
            first = str(exc).splitlines()[0] if str(exc) else ""
            fail(f"internal error: {type(exc).__name__}: {first} (rerun with -vv for the "
                 "traceback; please report it)", EXIT_INTERNAL)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True,
              help="More log output (-v info, -vv debug and tracebacks); also shows the "
              "segmentation library's own log lines, hidden otherwise.")
@click.version_option(package_name="bodyshape")
def main(verbose: int) -> None:
    """bodyshape: 3D body shape and tape measurements from a front and a side photo.

    Exit status: 0 done; 1 a batch finished with failed items; 2 usage error (options,
    files, folders); 3 an input refused (unusable photo or image); 4 internal error.
    """
    setup_logging(verbose)


for _stage in (shape, synth, learn, predict, size, serve):
    for _command in _stage.COMMANDS:
        main.add_command(_command)
