#!/bin/bash
# Meta-train MAML on Omniglot on one GPU device (MindSpore ModelZoo-style launcher).
#
# Usage: bash scripts/run_standalone_train_gpu.sh DEVICE_ID EPOCH DATA_PATH [--key value ...]
#   e.g. bash scripts/run_standalone_train_gpu.sh 0 20000 /data/omniglot --output_dir output/run1
# DEVICE_ID: card index (non-negative integer); EPOCH: meta-training steps (positive integer);
# DATA_PATH: Omniglot root (raw/images_{background,evaluation}.zip). Extra --key value pairs are
# overrides of default_config.yaml, passed through to omniglot_train.py (bare --resume means true).
#
# Runs
#   $PYTHON omniglot_train.py --device_target GPU --device_id DEVICE_ID --meta_steps EPOCH --data_path DATA_PATH ...
# from the repo root, which builds omniglot.npy first when it is missing from --npy_dir (default:
# DATA_PATH); callable from any directory (relative paths are taken from the caller's directory).
# Output goes to the console and is appended to <output_dir>/train.log; the exit code is python's.
# Python: $PYTHON if set (e.g. PYTHON=.venv/bin/python), else python3 from PATH.
# Exports DEVICE_ID; CUDA_VISIBLE_DEVICES is left alone (MindSpore selects the card from
# --device_id, so do not also mask cards unless you mean to).
# The logic lives in scripts/common.sh.

# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
maml_train_main GPU "$@"
