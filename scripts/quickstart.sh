#!/bin/bash
# The README's main command: install, prepare Omniglot, a short CPU meta-training run and its
# evaluation on 600 meta-test tasks, with no editing needed.
# Usage: bash scripts/quickstart.sh OMNIGLOT_ROOT [OUTPUT_DIR] [--key value ...]
#   OMNIGLOT_ROOT  folder with raw/images_background.zip and raw/images_evaluation.zip (fetch them
#                  with python src/data_preprocess.py --data_path DIR --download)
#   OUTPUT_DIR     where checkpoints, metrics and logs go (default output/quickstart; must not
#                  hold an earlier run's checkpoints)
#   --key value    further overrides for both training and evaluation (e.g. --meta_steps 100); paths
#                  relative to the caller's folder; not data_path, output_dir, npy_dir (set above) or
#                  ckpt (the run's best.ckpt)
# Environment: NPY_DIR (where omniglot.npy is built, default data/omniglot), VENV (default .venv).
# -h/--help anywhere prints this text and installs nothing. data_preprocess.py checks OMNIGLOT_ROOT:
# a missing folder ends in one error line, exit code 2.
set -euo pipefail
for arg in "$@"; do
    if [[ $arg == -h || $arg == --help ]]; then
        sed -n '2,/^[^#]/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
        exit 0
    fi
done
if (($# == 0)); then
    echo "error: expected OMNIGLOT_ROOT [OUTPUT_DIR] [--key value ...], got 0 arguments: see bash scripts/quickstart.sh --help" >&2
    exit 2
fi
NAMES=(OMNIGLOT_ROOT OUTPUT_DIR)
for i in 1 2; do
    if [[ ${!i:-} == -* ]]; then
        echo "error: ${NAMES[i - 1]} '${!i}' starts with '-': overrides come after OMNIGLOT_ROOT and OUTPUT_DIR," \
            "e.g. bash scripts/quickstart.sh /data/omniglot output/quickstart --meta_steps 100" >&2
        exit 2
    fi
done
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA_PATH="$(realpath -m -- "$1")"
OUTPUT_DIR="$(realpath -m -- "${2:-$ROOT/output/quickstart}")"
NPY_DIR="$(realpath -m -- "${NPY_DIR:-$ROOT/data/omniglot}")"
# The overrides as the launchers take them: path values made absolute (relative to the caller's
# directory), and no setting that the arguments and NPY_DIR give.
# shellcheck source=scripts/common.sh
source "$ROOT/scripts/common.sh"
maml_parse_overrides "data_path output_dir npy_dir ckpt" "${@:3}"
EXTRA=("${MAML_EXTRA[@]}")
source "$ROOT/scripts/setup_env.sh"
cd "$ROOT"
"$PYTHON" src/data_preprocess.py --data_path "$DATA_PATH" --output_path "$NPY_DIR"
"$PYTHON" omniglot_train.py --config_path configs/quickstart_cpu.yaml --data_path "$DATA_PATH" \
    --npy_dir "$NPY_DIR" --output_dir "$OUTPUT_DIR" "${EXTRA[@]}"
"$PYTHON" eval.py --config_path configs/quickstart_cpu.yaml --data_path "$DATA_PATH" \
    --npy_dir "$NPY_DIR" --ckpt "$OUTPUT_DIR/best.ckpt" "${EXTRA[@]}"
