# shellcheck shell=bash
# The data-parallel start of scripts/common.sh's maml_launch (modes distribute_train and distribute_eval):
# Python checks RANK_SIZE, the settings and paths once, builds omniglot.npy if it is missing or stale,
# and names the log, the ranks' log folder and the scheduler's port (src/model_utils/launch_plan.py), before any rank
# starts; then `$PYTHON -m src.model_utils.msrun RANK_SIZE PORT LOG_DIR SCRIPT ...` (src/model_utils/msrun.py: msrun's command
# line and environment, shared with benchmarks/bench_meta_step.py) starts RANK_SIZE ranks on this host,
# one worker_N.log per rank in LOG_DIR. The exit code is msrun's (130 when interrupted: msrun alone
# would exit 0). Sourced by scripts/common.sh, whose functions it uses.

# _maml_run_msrun KIND RANK_SIZE SCRIPT [ARG ...]: have python check the settings and plan the run
# (a bad setting ends the script with python's error line and exit code), then start the ranks.
_maml_run_msrun() {
    local kind=$1 rank_size=$2 log log_dir port
    _maml_plan "$kind" "$rank_size" "${MASTER_PORT:-}" "${@:4}"
    log=${MAML_PLAN[0]} log_dir=${MAML_PLAN[1]} port=${MAML_PLAN[2]}
    shift 2
    echo "ranks: $rank_size; the log of rank N: $log_dir/worker_N.log"
    _maml_run_logged "$log" "RANK_SIZE=$rank_size, scheduler port $port" "$MAML_PYTHON" -m src.model_utils.msrun "$rank_size" "$port" "$log_dir" "$@"
}
