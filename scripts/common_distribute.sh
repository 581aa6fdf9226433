# shellcheck shell=bash
# Shared logic of the data-parallel launchers run_distribute_train_{cpu,gpu,ascend}.sh and
# run_distribute_eval_{cpu,gpu,ascend}.sh, on top of scripts/common.sh. Sourced, not run; each
# launcher calls `maml_distribute_train_main TARGET "$@"` or `maml_distribute_eval_main TARGET "$@"`.
#
# What a launcher does:
#   1. checks its arguments as the standalone launchers do (one `error:` line and exit 2 on a wrong
#      count, path overrides made absolute), then has python check RANK_SIZE, the settings and
#      paths once, build omniglot.npy if it is missing or stale, and name the log, the ranks' log
#      folder and the scheduler's port (src/model_utils/launch_plan.py: one error line and exit 2 before any
#      rank starts);
#   2. starts RANK_SIZE ranks on this host with msrun (MindSpore's launcher), through
#      `$PYTHON -m src.model_utils.msrun RANK_SIZE PORT LOG_DIR SCRIPT ...` (src/model_utils/msrun.py: msrun's command line
#      and environment, which benchmarks/bench_meta_step.py uses too; one worker_N.log per rank in
#      LOG_DIR);
#   3. streams the ranks' output to the console and to a log file (train: <output_dir>/train.log,
#      appended; eval: <report>.log) and exits with msrun's exit code (130 when interrupted: msrun
#      alone would exit 0).

# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

_maml_usage_distribute_train() {
    local target=$1
    cat <<EOF
Usage: bash scripts/${MAML_SCRIPT} RANK_SIZE EPOCH DATA_PATH [--key value ...]
  Meta-train MAML on Omniglot data-parallel on RANK_SIZE ${target} ranks of this host (msrun).
  RANK_SIZE      number of ranks (positive integer; task_num must be a multiple of it)
  EPOCH          meta-training steps (positive integer)
${MAML_USAGE_DATA}
  --key value    any other setting of default_config.yaml, e.g. --output_dir output/run1 --resume
                 (not --device_id: msrun gives rank r the card r)
Example:
  bash scripts/${MAML_SCRIPT} 8 20000 /data/omniglot --output_dir output/run1
Python: \$PYTHON if set, else python3. Scheduler port: \$MASTER_PORT if set, else a free one.
Logs: <output_dir>/train.log (all ranks), <output_dir>/msrun_log/worker_N.log (rank N).
EOF
}

_maml_usage_distribute_eval() {
    local target=$1
    cat <<EOF
Usage: bash scripts/${MAML_SCRIPT} RANK_SIZE DATA_PATH CKPT_PATH [--key value ...]
  Evaluate a MAML checkpoint on the fixed Omniglot meta-test tasks, shared by RANK_SIZE ${target}
  ranks of this host (msrun); the result is the same as one process's.
  RANK_SIZE      number of ranks (positive integer)
${MAML_USAGE_DATA}
${MAML_USAGE_CKPT}
Example:
  bash scripts/${MAML_SCRIPT} 8 /data/omniglot output/best.ckpt
Python: \$PYTHON if set, else python3. Scheduler port: \$MASTER_PORT if set, else a free one.
Results: <CKPT_PATH>.eval.json (or --eval_report R.json); logs: <CKPT_PATH>.eval.log (all ranks),
<CKPT_PATH>.eval.msrun_log/worker_N.log (rank N); with --eval_report R.json: R.log, R.msrun_log/;
with --ensemble N: <CKPT_PATH>.eval_ensembleN.json, .log and .msrun_log/.
EOF
}

# _maml_run_msrun KIND RANK_SIZE SCRIPT [ARG ...]: have python check the settings and plan the run
# (a bad setting ends the script with python's error line and exit code), then start the ranks.
_maml_run_msrun() {
    local kind=$1 rank_size=$2 log log_dir port
    _maml_plan "$kind" "$rank_size" "${MASTER_PORT:-}" "${@:4}"
    log=${MAML_PLAN[0]} log_dir=${MAML_PLAN[1]} port=${MAML_PLAN[2]}
    shift 2
    MAML_RUN_ON="RANK_SIZE=$rank_size, scheduler port $port"
    echo "ranks: $rank_size; the log of rank N: $log_dir/worker_N.log"
    _maml_run_logged "$log" "$MAML_PYTHON" -m src.model_utils.msrun "$rank_size" "$port" "$log_dir" "$@"
}

# maml_distribute_train_main TARGET RANK_SIZE EPOCH DATA_PATH [--key value ...]
maml_distribute_train_main() {
    _maml_read_args train _maml_usage_distribute_train "$@"
    _maml_run_msrun train "$MAML_FIRST" omniglot_train.py "${MAML_SETTINGS[@]}"
    exit $?
}

# maml_distribute_eval_main TARGET RANK_SIZE DATA_PATH CKPT_PATH [--key value ...]
maml_distribute_eval_main() {
    _maml_read_args eval _maml_usage_distribute_eval "$@"
    _maml_run_msrun eval "$MAML_FIRST" eval.py "${MAML_SETTINGS[@]}"
    exit $?
}
