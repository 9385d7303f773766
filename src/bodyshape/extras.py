"""Optional dependency groups: importing a package of an extra with a one-line error.

``pip install bodyshape`` installs what prediction and the web app import at run time.
Building shape models (anny bodies, scikit-learn's Gaussian mixture) needs the ``build``
extra: ``pip install 'bodyshape[build]'`` (anny brings warp-lang). Those imports go through
:func:`require_extra`, so a missing package gives one line naming the extra instead of a
traceback (the CLI prints it with exit status 2).
"""

from __future__ import annotations

import importlib
from types import ModuleType


class MissingExtra(ImportError):
    """A package of an optional extra is not installed; ``str(err)`` is one line."""


def require_extra(module: str, extra: str = "build") -> ModuleType:
    """``importlib.import_module(module)``, or :class:`MissingExtra` naming ``extra``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtra(f"{module.split('.')[0]} is not installed; this needs the "
                           f"'{extra}' extra: pip install 'bodyshape[{extra}]'") from exc
