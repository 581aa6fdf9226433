#!/bin/bash
# Evaluate a MAML checkpoint on the fixed Omniglot meta-test tasks, shared by RANK_SIZE Ascend ranks of
# this host, started by msrun (MindSpore ModelZoo-style launcher). Same result as run_eval_ascend.sh.
#
# Usage: bash scripts/run_distribute_eval_ascend.sh RANK_SIZE DATA_PATH CKPT_PATH [--key value ...]
#   e.g. bash scripts/run_distribute_eval_ascend.sh 8 /data/omniglot output/best.ckpt
# RANK_SIZE: number of ranks; DATA_PATH: Omniglot root; CKPT_PATH: a checkpoint written by
# training. Extra --key value pairs are overrides of default_config.yaml, passed to eval.py (not
# --device_id: msrun gives rank r the card r). MASTER_PORT sets the scheduler's port (default: a
# free one). Rank 0 writes CKPT_PATH.eval.json (or --eval_report); output goes to the console,
# CKPT_PATH.eval.log and CKPT_PATH.eval.msrun_log/worker_N.log (with --ensemble N: .eval_ensembleN.*).
# The logic lives in scripts/common_distribute.sh.

# shellcheck source=scripts/common_distribute.sh
source "$(dirname "${BASH_SOURCE[0]}")/common_distribute.sh"
maml_distribute_eval_main Ascend "$@"
