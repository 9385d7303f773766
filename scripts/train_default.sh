#!/usr/bin/env bash
# Train the default network from scratch on CPU, as shipped in src/bodyshape/data/model.pt.
#
#   bash scripts/train_default.sh            # ~4 h on 2 cores; resumable (rerun after a kill)
#   N_TRAIN=20000 EPOCHS_VIEW=1 EPOCHS_FUSION=1 bash scripts/train_default.sh   # a quick try
#
# Steps (every one resumes where it stopped):
#   1. synthetic data from the shipped shape model: N_TRAIN training pairs (seed 0, per-sex
#      sampling), 1,000 validation pairs (seed 998) and 2,000 test pairs (seed 999), of the
#      PRESET (default realistic: per-view photo poses and garments, docs/SYNTH.md; clean:
#      the naked near-A-pose data the v1 network was trained on);
#   2. the front and side networks, then the fusion network reusing them, with
#      `bodyshape train`'s defaults (chosen by the ablations, docs/TRAINING.md);
#   3. evaluation on the test pairs -> WORK/eval.json and .md (realistic test pairs with
#      MediaPipe's measured segmentation errors); export -> src/bodyshape/data/model.pt
#      (set EXPORT=0 to keep the shipped model).
# TRAIN_FLAGS adds training options to every stage (e.g. "--parts --pose-weight 0.1",
# docs/TRAINING.md); DEVICE picks the device (auto: a GPU when there is one).
# After an export: benchmarks/bench_train.py, tools/make_measurement_errors.py, then
# bench_predict.py, bench_photo.py and bench_goals.py (docs/TRAINING.md, "The default model").
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null
BS=.venv/bin/bodyshape
WORK=${WORK:-work/train}
N_TRAIN=${N_TRAIN:-100000}
EPOCHS_VIEW=${EPOCHS_VIEW:-4}
EPOCHS_FUSION=${EPOCHS_FUSION:-2}
WORKERS=${WORKERS:-2}
EXPORT=${EXPORT:-1}
PRESET=${PRESET:-realistic}
TRAIN_FLAGS=${TRAIN_FLAGS:-}
DEVICE=${DEVICE:-auto}
EVAL_FLAGS=""
if [ "$PRESET" = realistic ]; then EVAL_FLAGS="--measured-errors"; fi
mkdir -p "$WORK"

$BS synth --n "$N_TRAIN" --seed 0 --sampling per-sex --preset "$PRESET" --workers "$WORKERS" --out "$WORK/data-train"
$BS synth --n 1000 --seed 998 --sampling per-sex --preset "$PRESET" --workers "$WORKERS" --out "$WORK/data-val"
$BS synth --n 2000 --seed 999 --sampling per-sex --preset "$PRESET" --workers "$WORKERS" --out "$WORK/data-test"

for view in front side; do
  $BS -v train --stage "$view" --data "$WORK/data-train" --val "$WORK/data-val" \
    --epochs "$EPOCHS_VIEW" --device "$DEVICE" $TRAIN_FLAGS --out "$WORK/$view"
done
$BS -v train --stage fusion --data "$WORK/data-train" --val "$WORK/data-val" \
  --front "$WORK/front/checkpoint.pt" --side "$WORK/side/checkpoint.pt" \
  --epochs "$EPOCHS_FUSION" --device "$DEVICE" $TRAIN_FLAGS --out "$WORK/fusion"

$BS eval --model "$WORK/fusion/checkpoint.pt" --data "$WORK/data-test" --device "$DEVICE" \
  $EVAL_FLAGS --out "$WORK/eval.json"
if [ "$EXPORT" = 1 ]; then
  $BS export-model "$WORK/fusion/checkpoint.pt" src/bodyshape/data/model.pt
fi
