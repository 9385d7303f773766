"""The shipped network's measured errors (bodyshape.accuracy) match its evaluation."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from bodyshape.accuracy import ERRORS_FILE, load_errors, measured_errors, weights_hash
from bodyshape.assets import DEFAULT_CHECKPOINT
from bodyshape.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def _tool():
    spec = importlib.util.spec_from_file_location(
        "make_measurement_errors", ROOT / "tools/make_measurement_errors.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_errors_file_is_the_shipped_networks_evaluation():
    """Regenerate with tools/make_measurement_errors.py when this fails."""
    data = load_errors()
    report = json.loads((ROOT / "benchmarks/results/train.json").read_text())
    expected = _tool().errors_from_report(report)
    assert data["mae_cm"] == expected["mae_cm"] and data["n"] == expected["n"]
    ckpt = load_checkpoint(DEFAULT_CHECKPOINT)
    assert data["weights_sha256"] == weights_hash(ckpt.model)
    assert measured_errors(ckpt) == data["mae_cm"]
    assert set(data["mae_cm"]) == {"chest_cm", "waist_cm", "hip_cm"}


def test_missing_file_gives_no_errors(tmp_path):
    ckpt = load_checkpoint(DEFAULT_CHECKPOINT)
    assert measured_errors(ckpt, tmp_path / "none.json") == {}
    assert ERRORS_FILE.is_file()
