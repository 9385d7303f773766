"""The shipped network's measured accuracy, per measurement, for the outputs to quote.

``data/measurement_errors.json`` holds the mean absolute error of each measurement that
``bodyshape eval`` measured for the shipped network on held-out synthetic data (chest, waist
and hip; ``benchmarks/bench_train.py`` records the report in
``benchmarks/results/train.json`` and ``tools/make_measurement_errors.py`` copies it here),
together with a hash of the network's weights. ``measured_errors(checkpoint)`` returns those
errors only for that very network: any other checkpoint gets an empty dict (its accuracy is
not known), never the shipped network's figures.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from bodyshape.assets import PACKAGE_DATA

logger = logging.getLogger(__name__)

ERRORS_FILE = PACKAGE_DATA / "measurement_errors.json"


def weights_hash(model) -> str:
    """Hex SHA-256 over a torch module's parameters and buffers (names, dtypes, shapes, bytes),
    in ``state_dict`` order: the same weights give the same hash wherever they are loaded."""
    h = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def load_errors(path: Path = ERRORS_FILE) -> dict:
    """The content of ``measurement_errors.json`` (``{}`` if the file is missing)."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        return {}


def measured_errors(checkpoint, path: Path = ERRORS_FILE) -> dict[str, float]:
    """Measurement name (``chest_cm``, ...) -> mean absolute error, cm, of ``checkpoint``'s
    network as measured on held-out data; ``{}`` when this network was not measured."""
    data = load_errors(path)
    if not data or data.get("weights_sha256") != weights_hash(checkpoint.model):
        logger.info("no measured accuracy for this network; predictions carry no error bars")
        return {}
    return {k: float(v) for k, v in data["mae_cm"].items()}
