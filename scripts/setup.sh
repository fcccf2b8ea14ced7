#!/usr/bin/env bash
# Create .venv (if missing) and install facemorphic with its test extras.
# torch/torchvision are installed first at the versions this project is tested with; on a machine with
# local wheels of them pip takes those, elsewhere it downloads them from PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
if ! .venv/bin/python -c "import torch, torchvision" 2>/dev/null; then
  .venv/bin/python -m pip install --quiet "torch==2.14.1" "torchvision==0.29.1"
fi
.venv/bin/python -m pip install --quiet -e ".[dev]"
echo "facemorphic installed in $(pwd)/.venv"
