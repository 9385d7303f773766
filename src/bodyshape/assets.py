"""Paths of the files shipped inside the package (the default network and shape model).

One place for them, so that the CLI, the web app and the predictor name the same files.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DATA = Path(__file__).resolve().parent / "data"
#: The default network (``scripts/train_default.sh``), loaded by ``bodyshape predict``.
DEFAULT_CHECKPOINT = PACKAGE_DATA / "model.pt"
#: The shipped PCA shape model (``bodyshape build-shape-model``).
DEFAULT_SHAPE_MODEL = PACKAGE_DATA / "shape_model.npz"
