# shellcheck shell=bash
# Shared logic of the launch scripts run_standalone_train_{cpu,gpu,ascend}.sh and
# run_eval_{cpu,gpu,ascend}.sh. It is sourced by them, not run on its own; each launcher
# calls `maml_train_main TARGET "$@"` or `maml_eval_main TARGET "$@"`. The data-parallel
# launchers' scripts/common_distribute.sh builds on its argument reading and logging.
#
# The launchers check only what Python cannot: the number of arguments, that no override repeats a
# positional argument, and that the interpreter exists. Python checks every setting and path,
# DEVICE_ID (as --device_id) included. Bad input is one `error:` line and exit code 2. A launcher
#   1. checks its arguments (-h/--help anywhere: the usage, exit 0; fewer than 3: one line naming
#      the positional arguments and pointing to --help, exit 2);
#   2. makes DATA_PATH, CKPT_PATH, a relative PYTHON and the path overrides --npy_dir, --output_dir,
#      --config_path and --eval_report absolute (relative to the caller's directory), then cds to the
#      repo root, so it works from any directory;
#   3. asks Python where the log goes (`python -m src.model_utils.launch_plan train|eval ...`, _maml_plan; Python checks
#      and creates the log file, which may only be an earlier log; it also checks the
#      settings as the program will (eval: as eval.py merges them with the checkpoint's; --resume: the
#      checkpoint it continues), that the data is there and the outputs, and stops here with one
#      `error:` line if one is wrong):
#        train: <output_dir>/train.log
#        eval:  R.log beside the report R.json: <CKPT_PATH>.eval.json (.eval_ensembleN.json with --ensemble N)
#               or --eval_report R.json
#   4. exports the DEVICE_ID Python accepted (Ascend also RANK_SIZE=1, RANK_ID=0; GPU leaves
#      CUDA_VISIBLE_DEVICES alone: MindSpore picks the card from --device_id);
#   5. runs omniglot_train.py / eval.py (which build omniglot.npy when it is missing or stale),
#      streaming all output to the console and appending it to the log, and exits with python's
#      exit code.
#
# Python: $PYTHON if set (e.g. PYTHON=.venv/bin/python), else python3 from PATH (the venv's, once
# it is activated).

set -u -o pipefail

MAML_REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MAML_SCRIPT=$(basename "$0")

# Refuse bad input: one error line, exit code 2.
_maml_die() {
    echo "error: $*" >&2
    exit 2
}

# Lines of the usages that the standalone and data-parallel launchers share.
MAML_USAGE_DATA="  DATA_PATH      Omniglot root holding raw/images_{background,evaluation}.zip
                 (or processed/ folders, or a prebuilt omniglot.npy)"
MAML_USAGE_CKPT="  CKPT_PATH      checkpoint written by training, e.g. output/best.ckpt
  --key value    any other setting of default_config.yaml, e.g. --eval_tasks 600 --npy_dir /tmp/omniglot_npy"

_maml_usage_train() {
    local target=$1
    cat <<EOF
Usage: bash scripts/${MAML_SCRIPT} DEVICE_ID EPOCH DATA_PATH [--key value ...]
  Meta-train MAML on Omniglot on ${target}.
  DEVICE_ID      card of this host (non-negative integer; ignored on CPU, use 0)
  EPOCH          meta-training steps (positive integer)
${MAML_USAGE_DATA}
  --key value    any other setting of default_config.yaml, e.g. --output_dir output/run1
                 --npy_dir /tmp/omniglot_npy --task_num 16 --resume
Example:
  bash scripts/${MAML_SCRIPT} 0 20000 /data/omniglot
  PYTHON=.venv/bin/python bash scripts/${MAML_SCRIPT} 0 20000 /data/omniglot --output_dir output/run1
Python: \$PYTHON if set, else python3. Log: <output_dir>/train.log (default output/train.log).
EOF
}

_maml_usage_eval() {
    local target=$1
    cat <<EOF
Usage: bash scripts/${MAML_SCRIPT} DEVICE_ID DATA_PATH CKPT_PATH [--key value ...]
  Evaluate a MAML checkpoint on the fixed Omniglot meta-test tasks on ${target}.
  DEVICE_ID      card of this host (non-negative integer; ignored on CPU, use 0)
${MAML_USAGE_DATA}
${MAML_USAGE_CKPT}
Example:
  bash scripts/${MAML_SCRIPT} 0 /data/omniglot output/best.ckpt
  PYTHON=.venv/bin/python bash scripts/${MAML_SCRIPT} 0 /data/omniglot output/best.ckpt --eval_tasks 1000
Python: \$PYTHON if set, else python3. Log: <CKPT_PATH>.eval.log; results: <CKPT_PATH>.eval.json
(with --ensemble N: <CKPT_PATH>.eval_ensembleN.json and .log; with --eval_report R.json: R.json, R.log).
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

# Scan the extra `--key value` / `--key=value` overrides: make path values absolute (relative to
# the caller's directory) and refuse keys that the positional arguments set. Result: MAML_EXTRA.
_maml_parse_extra() {
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

# _maml_run_logged LOG CMD [ARG ...]: run CMD with its output on the console and appended to LOG
# (a path Python named), under a header line that says when and on what ($MAML_RUN_ON).
_maml_run_logged() {
    local log=$1
    shift
    echo "log: $log"
    {
        echo "==== $(date '+%Y-%m-%d %H:%M:%S') $MAML_SCRIPT: $MAML_RUN_ON"
        echo "run: $*"
        "$@"
    } 2>&1 | (trap '' INT; exec tee -a -- "$log") # tee outlives Ctrl-C to log python's last line
    local rc=${PIPESTATUS[0]}
    echo "log: $log (exit code $rc)"
    return "$rc"
}

_maml_export_device() {
    local target=$1 device_id=$2
    export DEVICE_ID=$device_id
    export PYTHONUNBUFFERED=1
    MAML_RUN_ON="DEVICE_ID=$device_id"
    if [[ $target == Ascend ]]; then
        export RANK_SIZE=1 RANK_ID=0
    fi
}

# The usage on -h/--help anywhere (exit 0); fewer than the 3 positional arguments: one error line
# naming them (from the usage's first line) and pointing to --help.
_maml_check_arg_count() {
    local usage=$1 target=$2 arg synopsis
    shift 2
    for arg in "$@"; do
        if [[ $arg == -h || $arg == --help ]]; then
            "$usage" "$target"
            exit 0
        fi
    done
    if (($# < 3)); then
        synopsis=$("$usage" "$target")
        synopsis=${synopsis%%$'\n'*}
        synopsis=${synopsis#"Usage: bash scripts/$MAML_SCRIPT "}
        arg=arguments
        (($# != 1)) || arg=argument
        _maml_die "expected $synopsis, got $# $arg: see bash scripts/$MAML_SCRIPT --help"
    fi
}

# _maml_read_args KIND USAGE TARGET FIRST ARG2 ARG3 [--key value ...]: the arguments of a launcher of
# KIND, train (FIRST EPOCH DATA_PATH) or eval (FIRST DATA_PATH CKPT_PATH), FIRST being DEVICE_ID or
# RANK_SIZE. Sets MAML_FIRST and MAML_SETTINGS (the entry point's arguments, paths made absolute),
# resolves PYTHON and enters the repo root.
_maml_read_args() {
    local kind=$1 usage=$2 target=$3
    shift 3
    _maml_check_arg_count "$usage" "$target" "$@"
    MAML_FIRST=$1
    _maml_resolve_python
    if [[ $kind == train ]]; then
        MAML_SETTINGS=(--device_target "$target" --meta_steps "$2" --data_path "$(_maml_abs "$3")")
        shift 3
        _maml_parse_extra "device_target device_id data_path meta_steps epoch" "$@"
    else
        MAML_SETTINGS=(--device_target "$target" --data_path "$(_maml_abs "$2")" --ckpt "$(_maml_abs "$3")")
        shift 3
        _maml_parse_extra "device_target device_id data_path ckpt" "$@"
    fi
    MAML_SETTINGS+=("${MAML_EXTRA[@]}")
    cd "$MAML_REPO_ROOT" || exit 1 # not bad input: cd names the reason
}

# _maml_standalone_main KIND USAGE SCRIPT TARGET DEVICE_ID ...: have Python check the settings
# (DEVICE_ID as --device_id) and name the log, then export DEVICE_ID and run SCRIPT.
_maml_standalone_main() {
    local kind=$1 usage=$2 script=$3 target=$4
    shift 4
    _maml_read_args "$kind" "$usage" "$target" "$@"
    MAML_SETTINGS+=(--device_id "$MAML_FIRST")
    _maml_plan "$kind" "${MAML_SETTINGS[@]}"
    _maml_export_device "$target" "$MAML_FIRST"
    _maml_run_logged "${MAML_PLAN[0]}" "$MAML_PYTHON" "$script" "${MAML_SETTINGS[@]}"
    exit $?
}

# maml_train_main TARGET DEVICE_ID EPOCH DATA_PATH [--key value ...]
maml_train_main() {
    _maml_standalone_main train _maml_usage_train omniglot_train.py "$@"
}

# maml_eval_main TARGET DEVICE_ID DATA_PATH CKPT_PATH [--key value ...]
maml_eval_main() {
    _maml_standalone_main eval _maml_usage_eval eval.py "$@"
}
