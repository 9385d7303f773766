#!/usr/bin/env bash
# Set up and run the main job on the bundled default: predict the body and tape measurements
# of the shipped example photos (examples/front.jpg and side.jpg, rendered by the project
# from a 171.3 cm body) with the shipped network; outputs go to prediction/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/bodyshape predict --front examples/front.jpg --side examples/side.jpg \
  --height-cm 171.3 --fit-pose --out prediction
