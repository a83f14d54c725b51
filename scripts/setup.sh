#!/usr/bin/env bash
# Installs pdelang and everything it needs from the project's own files, at the versions the
# test suite last ran green with (constraints.txt, the lock; scripts/update-lock.sh refreshes it;
# pyproject.toml keeps the ranges for library users). PDELANG_LOCK=none installs from the ranges.
# torch: keep the CPU build that is already present; install 2.13.0 only when no torch is importable
# (a bare `torch` requirement could pull a multi-GB CUDA build). The lock never pins torch, and
# the torch installed is pinned for the second step, so pip can never replace it.
# distributed (Ray, for ablate --executor ray and its tests): about 11 s more from PyPI (measured).
# docs (mkdocs-material, mkdocstrings, mkdocs-gen-files): the site's strict build is a test.
set -euo pipefail
cd "$(dirname "$0")/.."
lock=()
[ "${PDELANG_LOCK:-}" = none ] || lock=(-c constraints.txt)
python -c "import torch" 2>/dev/null || python -m pip install --quiet ${lock[@]+"${lock[@]}"} "torch==2.13.0"
constraints="$(mktemp)"
trap 'rm -f "$constraints"' EXIT
if [ "${PDELANG_LOCK:-}" = none ]; then
    python -c "import importlib.metadata as m; print('torch==' + m.version('torch'))" >"$constraints"
else
    python scripts/lock.py constraints >"$constraints"
fi
python -m pip install --quiet -c "$constraints" -e ".[test,reference,distributed,docs]"
