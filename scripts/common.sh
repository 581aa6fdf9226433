# shellcheck shell=bash
# The launcher behind the twelve scripts/run_{standalone_train,eval,distribute_train,distribute_eval}_{cpu,gpu,ascend}.sh:
# each sources this file and calls `maml_launch MODE TARGET "$@"`, its mode and device being all that
# differs. Their usage is written once, in _maml_usage (`bash scripts/run_eval_gpu.sh --help` prints it).
# quickstart.sh uses maml_parse_overrides. The data-parallel start (msrun) is in scripts/common_distribute.sh.
#
# The launchers check only what Python cannot: the number of arguments, that no override repeats a
# positional argument, and that the interpreter exists. Python checks every setting and path,
# DEVICE_ID (as --device_id) and RANK_SIZE included. Bad input is one `error:` line and exit code 2. A launcher
#   1. checks its arguments (-h/--help anywhere: the usage, exit 0; fewer than 3: one line naming
#      the positional arguments and pointing to --help, exit 2);
#   2. makes DATA_PATH, CKPT_PATH, a relative PYTHON and the path overrides --npy_dir, --output_dir,
#      --config_path and --eval_report absolute (relative to the caller's directory), then cds to the
#      repo root, so it works from any directory;
#   3. asks Python to check the run and name its log (`python -m src.model_utils.launch_plan train|eval ...`, _maml_plan):
#      the settings as the program will read them (eval: merged with the checkpoint's; --resume: the
#      checkpoint it continues), the backend, the data and the outputs; a wrong one stops the launcher
#      here with Python's `error:` line, before the log begins;
#   4. standalone: exports the DEVICE_ID Python accepted (Ascend also RANK_SIZE=1, RANK_ID=0; GPU leaves
#      CUDA_VISIBLE_DEVICES alone: MindSpore picks the card from --device_id); data-parallel: starts
#      RANK_SIZE ranks with msrun, rank r on card r;
#   5. runs omniglot_train.py / eval.py (which build omniglot.npy when it is missing or stale),
#      streaming all output to the console and appending it to the log, and exits with python's
#      exit code (130 when interrupted).

set -u -o pipefail

MAML_REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MAML_SCRIPT=$(basename "$0")

# Refuse bad input: one error line, exit code 2.
_maml_die() {
    echo "error: $*" >&2
    exit 2
}

# _maml_usage MODE TARGET: the usage of the launcher of MODE on TARGET (see maml_launch).
_maml_usage() {
    local mode=$1 target=$2 first where args lines example overrides outputs ranks
    if [[ $mode == distribute_* ]]; then
        first=RANK_SIZE where="data-parallel on RANK_SIZE $target ranks of this host (msrun)" example=8
        lines="  RANK_SIZE      number of ranks, a positive integer"
    else
        first=DEVICE_ID where="on one $target device" example=0
        lines="  DEVICE_ID      card of this host (non-negative integer; ignored on CPU, use 0)"
    fi
    if [[ $mode == *train ]]; then
        args="EPOCH DATA_PATH" where="Meta-train MAML on Omniglot $where."
        [[ $mode == distribute_* ]] && lines+=" that divides task_num"
        lines+=$'\n'"  EPOCH          meta-training steps (positive integer)"
        example+=" 20000 /data/omniglot --output_dir output/run1"
        overrides="--output_dir output/run1 --task_num 16 --resume"
        outputs="Log: <output_dir>/train.log (default output/train.log)."
        ranks="<output_dir>/msrun_log/worker_N.log"
    else
        args="DATA_PATH CKPT_PATH" where="Evaluate a MAML checkpoint on the fixed Omniglot meta-test tasks $where."
        example+=" /data/omniglot output/best.ckpt"
        overrides="--eval_tasks 1000 --k_qry_test 1 --ensemble 5"
        outputs="Report: <CKPT_PATH>.eval[_ensembleN][_val][_nontransductive].json (with --ensemble N, --eval_split val,
--transductive false) or --eval_report R.json; its log: the report's name with .log."
        ranks="the report's name with .msrun_log/worker_N.log"
    fi
    lines+=$'\n'"  DATA_PATH      Omniglot root holding raw/images_{background,evaluation}.zip
                 (or processed/ folders, or a prebuilt omniglot.npy)"
    [[ $mode == *eval ]] && lines+=$'\n'"  CKPT_PATH      checkpoint written by training, e.g. output/best.ckpt"
    if [[ $mode == distribute_* ]]; then
        outputs+=" Rank N's log: $ranks.
Scheduler port: \$MASTER_PORT if set, else a free one. msrun gives rank r the card r (no --device_id)."
    fi
    cat <<EOF
Usage: bash scripts/${MAML_SCRIPT} ${first} ${args} [--key value ...]
  ${where}
${lines}
  --key value    any other setting of default_config.yaml, e.g. ${overrides}
Example:
  bash scripts/${MAML_SCRIPT} ${example}
Python: \$PYTHON if set (e.g. PYTHON=.venv/bin/python), else python3.
${outputs}
EOF
}

# Absolute form of a path, relative to the caller's directory; need not exist.
_maml_abs() {
    realpath -m -- "$1"
}

# Resolve PYTHON (default python3); set MAML_PYTHON.
_maml_resolve_python() {
    MAML_PYTHON=${PYTHON:-python3}
    # A relative PYTHON (.venv/bin/python) must survive the cd to the repo root; no realpath here:
    # resolving the venv's symlink would leave the venv.
    if [[ $MAML_PYTHON == */* && $MAML_PYTHON != /* ]]; then
        MAML_PYTHON="$PWD/$MAML_PYTHON"
    fi
    command -v -- "$MAML_PYTHON" >/dev/null 2>&1 \
        || _maml_die "python '$MAML_PYTHON' not found: set PYTHON to the interpreter of your venv (e.g. PYTHON=.venv/bin/python)"
}

# maml_parse_overrides "KEY ..." [--key value ...]: scan the `--key value` / `--key=value` overrides of a
# script whose own arguments set the KEYs: make path values absolute (relative to the caller's directory)
# and refuse those KEYs (one error line, exit code 2). Result: the array MAML_EXTRA.
maml_parse_overrides() {
    local positional=$1
    shift
    MAML_EXTRA=()
    local arg key value
    while (($#)); do
        arg=$1
        shift
        key=${arg#--}
        key=${key%%=*}
        if [[ $arg == --* && " $positional " == *" $key "* ]]; then
            _maml_die "--$key is set by this script (see its usage): do not pass it as an override"
        fi
        case $arg in
            --npy_dir=?* | --output_dir=?* | --config_path=?* | --eval_report=?*)
                MAML_EXTRA+=("--$key" "$(_maml_abs "${arg#*=}")") ;;
            --npy_dir | --output_dir | --config_path | --eval_report)
                MAML_EXTRA+=("$arg")
                if (($#)) && [[ $1 != -* ]]; then # no value (none, or the next option): python reports it
                    value=$1
                    [[ -n $value ]] && value=$(_maml_abs "$value")
                    MAML_EXTRA+=("$value")
                    shift
                fi
                ;;
            *) MAML_EXTRA+=("$arg") ;;
        esac
    done
}

# _maml_plan KIND [ARG ...]: have Python check the settings of a run of KIND and plan it
# (`python -m src.model_utils.launch_plan KIND ARG ...`); its answer, NUL-separated fields that no path can split,
# goes to the array MAML_PLAN. A refusal ends the script with Python's error line and exit code.
_maml_plan() {
    MAML_PLAN=()
    mapfile -d '' -t MAML_PLAN < <("$MAML_PYTHON" -m src.model_utils.launch_plan "$@")
    wait "$!" || exit $?
}

# _maml_run_logged LOG RUN_ON CMD [ARG ...]: run CMD with its output on the console and appended to LOG
# (a path Python named), under a header line that says when and on what (RUN_ON).
_maml_run_logged() {
    local log=$1 run_on=$2
    shift 2
    echo "log: $log"
    {
        echo "==== $(date '+%Y-%m-%d %H:%M:%S') $MAML_SCRIPT: $run_on"
        echo "run: $*"
        "$@"
    } 2>&1 | (trap '' INT; exec tee -a -- "$log") # tee outlives Ctrl-C to log python's last line
    local rc=${PIPESTATUS[0]}
    echo "log: $log (exit code $rc)"
    return "$rc"
}

# _maml_run_standalone TARGET KIND SCRIPT [ARG ...]: have Python check the settings (DEVICE_ID as
# --device_id) and name the log, then export DEVICE_ID and run SCRIPT.
_maml_run_standalone() {
    local target=$1 kind=$2 script=$3
    shift 3
    _maml_plan "$kind" "$@"
    export DEVICE_ID=$MAML_FIRST PYTHONUNBUFFERED=1
    if [[ $target == Ascend ]]; then
        export RANK_SIZE=1 RANK_ID=0
    fi
    _maml_run_logged "${MAML_PLAN[0]}" "DEVICE_ID=$MAML_FIRST" "$MAML_PYTHON" "$script" "$@"
}

# _maml_check_arg_count MODE TARGET [ARG ...]: the usage on -h/--help anywhere (exit 0); fewer than the 3
# positional arguments: one error line naming them (from the usage's first line) and pointing to --help.
_maml_check_arg_count() {
    local mode=$1 target=$2 arg synopsis
    shift 2
    for arg in "$@"; do
        if [[ $arg == -h || $arg == --help ]]; then
            _maml_usage "$mode" "$target"
            exit 0
        fi
    done
    if (($# < 3)); then
        synopsis=$(_maml_usage "$mode" "$target")
        synopsis=${synopsis%%$'\n'*}
        synopsis=${synopsis#"Usage: bash scripts/$MAML_SCRIPT "}
        arg=arguments
        (($# != 1)) || arg=argument
        _maml_die "expected $synopsis, got $# $arg: see bash scripts/$MAML_SCRIPT --help"
    fi
}

# maml_launch MODE TARGET FIRST ARG2 ARG3 [--key value ...]: the launcher of MODE on TARGET (CPU, GPU or
# Ascend). MODE is standalone_train (DEVICE_ID EPOCH DATA_PATH), eval (DEVICE_ID DATA_PATH CKPT_PATH),
# distribute_train (RANK_SIZE EPOCH DATA_PATH) or distribute_eval (RANK_SIZE DATA_PATH CKPT_PATH).
maml_launch() {
    local mode=$1 target=$2 kind script settings positional
    shift 2
    _maml_check_arg_count "$mode" "$target" "$@"
    MAML_FIRST=$1
    _maml_resolve_python
    if [[ $mode == *train ]]; then
        kind=train script=omniglot_train.py positional="meta_steps epoch"
        settings=(--device_target "$target" --meta_steps "$2" --data_path "$(_maml_abs "$3")")
    else
        kind=eval script=eval.py positional=ckpt
        settings=(--device_target "$target" --data_path "$(_maml_abs "$2")" --ckpt "$(_maml_abs "$3")")
    fi
    shift 3
    maml_parse_overrides "device_target device_id data_path $positional" "$@"
    settings+=("${MAML_EXTRA[@]}")
    cd "$MAML_REPO_ROOT" || exit 1 # not bad input: cd names the reason
    if [[ $mode == distribute_* ]]; then
        _maml_run_msrun "$kind" "$MAML_FIRST" "$script" "${settings[@]}"
    else
        _maml_run_standalone "$target" "$kind" "$script" "${settings[@]}" --device_id "$MAML_FIRST"
    fi
    exit $?
}

# shellcheck source=scripts/common_distribute.sh
source "$MAML_REPO_ROOT/scripts/common_distribute.sh"
