#!/usr/bin/env bash
# Create .venv (if missing) and install bodyshape with its build and test extras into it
# (the tests build anny bodies; prediction and the web app alone need neither extra).
# torch==2.13.0 is the CPU build; pip finds it locally on these machines.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
fi
.venv/bin/python -m pip install -q -e ".[build,test]"
# mediapipe depends on opencv-contrib-python, which writes the desktop OpenCV build (it needs
# libGL) into the same cv2/ folder as our opencv-python-headless: restore the headless files.
.venv/bin/python -m pip install -q --force-reinstall --no-deps "opencv-python-headless==4.11.0.86"
.venv/bin/python -c "import cv2" || { echo "setup: OpenCV does not import" >&2; exit 1; }
