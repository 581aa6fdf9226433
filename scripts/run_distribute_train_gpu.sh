#!/bin/bash
# Meta-train MAML on Omniglot data-parallel on RANK_SIZE GPU ranks of this host, started by msrun
# (MindSpore ModelZoo-style launcher).
#
# Usage: bash scripts/run_distribute_train_gpu.sh RANK_SIZE EPOCH DATA_PATH [--key value ...]
#   e.g. bash scripts/run_distribute_train_gpu.sh 8 20000 /data/omniglot --output_dir output/run1
# RANK_SIZE: number of ranks (task_num, the global meta-batch, must be a multiple of it); EPOCH:
# meta-training steps; DATA_PATH: Omniglot root. Extra --key value pairs are overrides of
# default_config.yaml (not --device_id: msrun gives rank r the card r). MASTER_PORT sets the
# scheduler's port (default: a free one). Every rank draws the same meta-batch and adapts its
# share of the tasks; the meta-gradients are averaged; rank 0 writes the checkpoints, metrics.jsonl
# and the log lines. Output: the console, <output_dir>/train.log, <output_dir>/msrun_log/worker_N.log.
# The logic lives in scripts/common_distribute.sh.

# shellcheck source=scripts/common_distribute.sh
source "$(dirname "${BASH_SOURCE[0]}")/common_distribute.sh"
maml_distribute_train_main GPU "$@"
