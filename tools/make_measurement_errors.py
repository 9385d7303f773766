"""Write src/bodyshape/data/measurement_errors.json from the shipped network's evaluation.

    python tools/make_measurement_errors.py [--report benchmarks/results/train.json]

Reads the ``bodyshape eval`` report that ``benchmarks/bench_train.py`` stored (all test
pairs, sex given) and the shipped network's weights, and writes each measured mean absolute
error in cm with the hash of the weights it belongs to (``bodyshape.accuracy``). Rerun it
whenever the shipped network or its evaluation changes; a test checks that they agree.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bodyshape.accuracy import ERRORS_FILE, weights_hash
from bodyshape.assets import DEFAULT_CHECKPOINT
from bodyshape.checkpoint import load_checkpoint
from bodyshape.fileio import write_json

ROOT = Path(__file__).resolve().parents[1]
# Report metric (mm) -> measurement name (cm). Not stature: a prediction is scaled to the
# height the user gives, so its height has no network error.
METRICS = {"chest_mm": "chest_cm", "waist_mm": "waist_cm", "hip_mm": "hip_cm"}


def errors_from_report(report: dict) -> dict:
    """The file's content from a bench_train result (its ``report``: ``bodyshape eval``)."""
    rep = report["report"]["all"]
    return {"source": "bodyshape eval of the shipped network on held-out synthetic pairs "
                      "(sex given), benchmarks/results/train.json",
            "n": int(rep["n"]),
            "mae_cm": {name: round(rep[metric] / 10.0, 3) for metric, name in METRICS.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--report", type=Path, default=ROOT / "benchmarks/results/train.json")
    a = ap.parse_args()
    content = errors_from_report(json.loads(a.report.read_text()))
    content["weights_sha256"] = weights_hash(load_checkpoint(DEFAULT_CHECKPOINT).model)
    write_json(ERRORS_FILE, content)
    print(f"wrote {ERRORS_FILE}: {content['mae_cm']}")


if __name__ == "__main__":
    main()
