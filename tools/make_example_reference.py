"""Write tests/data/example_measurements_reference.json: the shipped network's measurements of
the example photos, the pin that ``tests/test_predict.py`` holds later code to.

    python tools/make_example_reference.py

Rerun it only when the shipped network changes (``scripts/train_default.sh``), never to make
a code change pass: the file records the weights' hash (``bodyshape.accuracy.weights_hash``),
and the test fails with that reason when the shipped network is another one.
"""

from __future__ import annotations

from pathlib import Path

from bodyshape.accuracy import weights_hash
from bodyshape.assets import DEFAULT_CHECKPOINT, DEFAULT_SHAPE_MODEL
from bodyshape.body import BodyModel
from bodyshape.checkpoint import load_checkpoint
from bodyshape.fileio import write_json
from bodyshape.predict import Predictor

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "data" / "example_measurements_reference.json"
HEIGHT_CM = 171.3  # the example body's height, as the README's command gives it


def main() -> None:
    ckpt = load_checkpoint(DEFAULT_CHECKPOINT)
    with Predictor(ckpt, BodyModel.load(DEFAULT_SHAPE_MODEL)) as predictor:
        pred = predictor(ROOT / "examples" / "front.jpg", ROOT / "examples" / "side.jpg",
                         HEIGHT_CM)
    write_json(OUT, {
        "about": "Measurements (cm, rounded as measurements.json writes them) of the shipped "
                 "network on examples/front.jpg and side.jpg at 171.3 cm; written by "
                 "tools/make_example_reference.py. --fit-pose leaves them unchanged.",
        "weights_sha256": weights_hash(ckpt.model),
        "measurements": {k: round(float(v), 1) for k, v in pred.measurements.items()}})
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
