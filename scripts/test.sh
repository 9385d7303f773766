#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export ANNY_CACHE_DIR="${ANNY_CACHE_DIR:-$PWD/.anny_cache}"
.venv/bin/python -m pytest -q "$@"
