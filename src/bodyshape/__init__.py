"""bodyshape: 3D body shape and tape measurements from a front and a side photo.

Data flows one way: shape (template, registration, PCA) -> synth -> train -> predict.

The Python API (docs/PREDICT.md, *Python API*)::

    from bodyshape import Predictor
    with Predictor.load() as predictor:          # the shipped network and shape model
        prediction = predictor("front.jpg", "side.jpg", height_cm=172)
    prediction.measurements["chest_cm"], prediction.to_dict(units="in")

``Predictor``, ``Prediction``, ``write_prediction``, ``load_chart`` and ``recommend`` are
imported on first use, so ``import bodyshape`` stays light (no torch).
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "Predictor": "bodyshape.predict",
    "Prediction": "bodyshape.predict",
    "write_prediction": "bodyshape.outputs",
    "load_chart": "bodyshape.sizing",
    "recommend": "bodyshape.sizing",
}
__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    """Lazy exports (PEP 562): the module that defines ``name`` is imported on first use."""
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'bodyshape' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
