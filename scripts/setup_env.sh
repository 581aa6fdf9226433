#!/bin/bash
# Create the project's virtual environment (.venv) and install requirements.txt into it.
# Sourced by quickstart.sh and run_tests.sh; safe to run again (pip skips what is installed).
# Set PYTHON_BIN to choose the interpreter that creates the venv (default python3, 3.10 or 3.11);
# SETUP_REQUIREMENTS names another requirements file of the repository to install instead
# (run_tests.sh: requirements-dev.txt, which includes requirements.txt).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$(realpath -ms -- "${VENV:-$ROOT/.venv}")" # absolute: the callers cd to the repository root
if [ ! -x "$VENV/bin/python" ]; then
    echo "creating virtual environment $VENV"
    "${PYTHON_BIN:-python3}" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$ROOT/${SETUP_REQUIREMENTS:-requirements.txt}"
export PYTHON="$VENV/bin/python"
