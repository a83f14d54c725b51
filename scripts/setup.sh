#!/usr/bin/env bash
# Installs pdelang and everything it needs from the project's own files.
# torch: keep the CPU build that is already present; install 2.13.0 only when no torch is importable
# (a bare `torch` requirement could pull a multi-GB CUDA build).
# distributed (Ray, for ablate --executor ray and its tests): about 11 s more from PyPI (measured).
set -euo pipefail
cd "$(dirname "$0")/.."
python -c "import torch" 2>/dev/null || python -m pip install --quiet "torch==2.13.0"
python -m pip install --quiet -e ".[test,reference,distributed]"
