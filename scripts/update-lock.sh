#!/usr/bin/env bash
# Refreshes constraints.txt, the lock scripts/setup.sh installs with: creates a fresh venv,
# installs pdelang[test,reference,distributed,docs] from pyproject.toml's ranges (the newest
# releases they allow; torch as setup.sh does), runs the default test suite there and, only
# if it is green, writes the venv's dependency closure (scripts/lock.py freeze) to
# constraints.txt. Review `git diff constraints.txt` and commit it.
# Extra arguments go to pytest (e.g. -x). Takes set-up (about 2 min) plus the suite's time.
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
venv="$(mktemp -d)"
trap 'rm -rf "$venv"' EXIT
"$python" -m venv "$venv"
# shellcheck disable=SC1091
. "$venv/bin/activate"
PDELANG_LOCK=none bash scripts/setup.sh
python -m pip check
if ! python -m pytest -q "$@"; then
    echo "update-lock: the suite is not green with these versions; constraints.txt is unchanged" >&2
    exit 1
fi
python scripts/lock.py freeze >"$venv/constraints.txt"
mv "$venv/constraints.txt" constraints.txt
echo "update-lock: constraints.txt written; review it with git diff constraints.txt" >&2
