#!/bin/bash
# Evaluate a MAML checkpoint on the fixed Omniglot meta-test tasks on one Ascend device
# (MindSpore ModelZoo-style launcher).
#
# Usage: bash scripts/run_eval_ascend.sh DEVICE_ID DATA_PATH CKPT_PATH [--key value ...]
#   e.g. bash scripts/run_eval_ascend.sh 0 /data/omniglot output/best.ckpt
# DEVICE_ID: card index (non-negative integer); DATA_PATH: Omniglot root
# (raw/images_{background,evaluation}.zip); CKPT_PATH: a checkpoint written by training. Extra
# --key value pairs are overrides of default_config.yaml, passed through to eval.py.
#
# Runs
#   $PYTHON eval.py --device_target Ascend --device_id DEVICE_ID --data_path DATA_PATH --ckpt CKPT_PATH ...
# from the repo root, which builds omniglot.npy first when it is missing from --npy_dir (default:
# DATA_PATH); callable from any directory (relative paths are taken from the caller's directory).
# Output goes to the console and is appended to CKPT_PATH.eval.log (eval.py writes the results to
# CKPT_PATH.eval.json; with --ensemble N, .eval_ensembleN.log and .json); the exit code is python's. Python: $PYTHON if set (e.g.
# PYTHON=.venv/bin/python), else python3 from PATH.
# Exports DEVICE_ID, RANK_SIZE=1 and RANK_ID=0 (single-card run, as ModelZoo scripts do).
# The logic lives in scripts/common.sh.

# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
maml_eval_main Ascend "$@"
