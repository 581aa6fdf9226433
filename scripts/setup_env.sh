#!/bin/bash
# Create the project's virtual environment (.venv) and install requirements.txt into it.
# Sourced by quickstart.sh and run_tests.sh; safe to run again (pip skips what is installed).
# Set PYTHON_BIN to choose the interpreter that creates the venv (default python3, 3.9-3.11).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
if [ ! -x "$VENV/bin/python" ]; then
    echo "creating virtual environment $VENV"
    "${PYTHON_BIN:-python3}" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$ROOT/requirements.txt"
export PYTHON="$VENV/bin/python"
