#!/usr/bin/env bash
# Set up and run the main job on the bundled default.
# Until prediction exists: build a small shape model end to end (anny bodies, registration
# of a foreign topology, PCA; ~10 minutes on a fresh machine, most of it anny's one-off model
# build) and print its summary next to the shipped default model's.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export ANNY_CACHE_DIR="${ANNY_CACHE_DIR:-$PWD/.anny_cache}"
.venv/bin/bodyshape build-shape-model --preset quick --work work/quick
echo
echo "== shipped default model (bodyshape pca summary) =="
.venv/bin/bodyshape pca summary
