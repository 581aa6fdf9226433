#!/bin/bash
# The README's test command: install requirements-dev.txt (the running requirements, pytest,
# pytest-xdist, matplotlib and shellcheck), then run the whole test suite, slow end-to-end tests too (-m "" lifts
# pytest.ini's default, the fast tests only), one pytest worker per core (at most 4, for memory;
# pass -n 0 for one process); the tests sharing a costly module fixture run on one worker (tests/conftest.py).
# Usage: bash scripts/run_tests.sh [pytest args...]
# The tests read the real Omniglot from OMNIGLOT_ROOT (default: default_config.yaml's data_path) and never write
# there; without it the tests that need it fail (OMNIGLOT_REQUIRED=0 skips them instead).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SETUP_REQUIREMENTS=requirements-dev.txt
source "$ROOT/scripts/setup_env.sh"
cd "$ROOT"
export OMNIGLOT_REQUIRED="${OMNIGLOT_REQUIRED:-1}"
exec "$PYTHON" -m pytest tests -q -m "" -n auto --maxprocesses 4 --dist loadgroup --durations=15 "$@"
