# shellcheck shell=bash
# Shared logic of the launch scripts run_standalone_train_{cpu,gpu,ascend}.sh and
# run_eval_{cpu,gpu,ascend}.sh. It is sourced by them, not run on its own; each launcher
# calls `maml_train_main TARGET "$@"` or `maml_eval_main TARGET "$@"`.
#
# What a launcher does:
#   1. checks its arguments (usage + exit 1 on a wrong count, one-line errors naming a bad value);
#   2. makes DATA_PATH, CKPT_PATH, a relative PYTHON and the path overrides --npy_dir, --output_dir,
#      --config_path and --eval_report absolute (relative to the caller's directory), then cds to the repo root,
#      so it works from any directory;
#   3. exports DEVICE_ID (Ascend also RANK_SIZE=1, RANK_ID=0; GPU leaves CUDA_VISIBLE_DEVICES
#      alone: MindSpore picks the card from --device_id);
#   4. builds omniglot.npy with src/data_preprocess.py when it (or its index) is missing from the
#      npy folder (--npy_dir if given, else DATA_PATH). A present but outdated file is rebuilt by
#      training/eval itself (src/dataset.prepare_omniglot), so nothing is decoded twice;
#   5. runs omniglot_train.py / eval.py, streaming all output to the console and a log file:
#        train: <output_dir>/train.log  (appended, so a --resume'd run keeps one log; output_dir is
#               the --output_dir override, else the value in --config_path / default_config.yaml,
#               relative to the repo root)
#        eval:  <CKPT_PATH>.eval.log    (overwritten, next to the <CKPT_PATH>.eval.json eval.py writes;
#               with --eval_report R.json, R.log beside it)
#      and exits with python's exit code.
#
# Python: $PYTHON if set (e.g. PYTHON=.venv/bin/python), else python3 from PATH (the venv's, once
# it is activated).

set -u -o pipefail

MAML_REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MAML_SCRIPT=$(basename "$0")

_maml_die() {
    echo "error: $*" >&2
    exit 1
}

_maml_usage_train() {
    local target=$1
    cat <<EOF
Usage: bash scripts/${MAML_SCRIPT} DEVICE_ID EPOCH DATA_PATH [--key value ...]
  Meta-train MAML on Omniglot on ${target}.
  DEVICE_ID      card of this host (non-negative integer; ignored on CPU, use 0)
  EPOCH          meta-training steps (positive integer)
  DATA_PATH      Omniglot root holding raw/images_{background,evaluation}.zip
                 (or processed/ folders, or a prebuilt omniglot.npy)
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
  DATA_PATH      Omniglot root holding raw/images_{background,evaluation}.zip
                 (or processed/ folders, or a prebuilt omniglot.npy)
  CKPT_PATH      checkpoint written by training, e.g. output/best.ckpt
  --key value    any other setting of default_config.yaml, e.g. --eval_tasks 600 --npy_dir /tmp/omniglot_npy
Example:
  bash scripts/${MAML_SCRIPT} 0 /data/omniglot output/best.ckpt
  PYTHON=.venv/bin/python bash scripts/${MAML_SCRIPT} 0 /data/omniglot output/best.ckpt --eval_tasks 1000
Python: \$PYTHON if set, else python3. Log: <CKPT_PATH>.eval.log; results: <CKPT_PATH>.eval.json
(with --eval_report R.json: results in R.json, log in R.log).
EOF
}

# Absolute form of a path, relative to the caller's directory; need not exist.
_maml_abs() {
    realpath -m -- "$1"
}

# Value of `key:` in a flat YAML file (quotes and trailing comment dropped), empty if absent.
_maml_yaml_value() {
    sed -n "s/^$2:[[:space:]]*\([^#]*\).*/\1/p" "$1" 2>/dev/null | tail -n 1 \
        | sed -e 's/[[:space:]]*$//' -e "s/^[\"']\(.*\)[\"']\$/\1/"
}

# Check DEVICE_ID; resolve PYTHON; set MAML_PYTHON.
_maml_common_checks() {
    local device_id=$1
    [[ $device_id =~ ^[0-9]+$ ]] || _maml_die "DEVICE_ID '$device_id' is not a non-negative integer (e.g. 0)"
    _maml_resolve_python
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

_maml_check_data_path() {
    [[ -d $1 ]] || _maml_die "DATA_PATH '$1' does not exist or is not a folder: pass the Omniglot root (holding raw/*.zip)"
    MAML_DATA_PATH=$(realpath -- "$1")
}

# Scan the extra `--key value` / `--key=value` overrides: make path values absolute, remember
# npy_dir, output_dir, config_path, eval_report and imgsz, and refuse keys that the positional
# arguments set. Result: MAML_EXTRA (array), MAML_NPY_DIR, MAML_OUTPUT_DIR, MAML_CONFIG_PATH,
# MAML_EVAL_REPORT, MAML_IMGSZ.
_maml_parse_extra() {
    local positional=$1
    shift
    MAML_EXTRA=()
    MAML_NPY_DIR="" MAML_OUTPUT_DIR="" MAML_CONFIG_PATH="" MAML_EVAL_REPORT="" MAML_IMGSZ=""
    local arg key value inline
    while (($#)); do
        arg=$1
        shift
        if [[ $arg != --* ]]; then
            MAML_EXTRA+=("$arg")
            continue
        fi
        key=${arg#--}
        inline=0
        if [[ $key == *=* ]]; then
            value=${key#*=}
            key=${key%%=*}
            inline=1
        fi
        if [[ " $positional " == *" $key "* ]]; then
            _maml_die "--$key is set by a positional argument of this script: do not pass it as an override"
        fi
        case $key in
            npy_dir | output_dir | config_path | eval_report | imgsz) ;;
            *)
                MAML_EXTRA+=("$arg")
                continue
                ;;
        esac
        if ((!inline)); then
            if (($# == 0)); then # no value: let the python side report it
                MAML_EXTRA+=("$arg")
                continue
            fi
            value=$1
            shift
        fi
        if [[ $key != imgsz && -n $value ]]; then
            value=$(_maml_abs "$value")
        fi
        case $key in
            npy_dir) MAML_NPY_DIR=$value ;;
            output_dir) MAML_OUTPUT_DIR=$value ;;
            config_path) MAML_CONFIG_PATH=$value ;;
            eval_report) MAML_EVAL_REPORT=$value ;;
            imgsz) MAML_IMGSZ=$value ;;
        esac
        MAML_EXTRA+=("--$key" "$value")
    done
}

# Build omniglot.npy when it is missing from the npy folder (a fast check; staleness is handled by
# prepare_omniglot in the python entry points).
_maml_prepare_data() {
    local npy_dir=${MAML_NPY_DIR:-$MAML_DATA_PATH}
    if [[ -f $npy_dir/omniglot.npy && -f $npy_dir/omniglot_index.json ]]; then
        echo "data: using $npy_dir/omniglot.npy (rebuilt by the run itself if outdated)"
        return 0
    fi
    local cmd=("$MAML_PYTHON" src/data_preprocess.py --data_path "$MAML_DATA_PATH")
    [[ -n $MAML_NPY_DIR ]] && cmd+=(--output_path "$MAML_NPY_DIR")
    [[ -n $MAML_IMGSZ ]] && cmd+=(--imgsz "$MAML_IMGSZ")
    echo "data: $npy_dir/omniglot.npy is missing, building it: ${cmd[*]}"
    "${cmd[@]}"
}

# Run "$@" (after the data preparation) with its output on the console and in log file $1.
_maml_run_logged() {
    local log=$1 append=$2
    shift 2
    local tee_opts=()
    ((append)) && tee_opts=(-a)
    echo "log: $log"
    {
        echo "==== $(date '+%Y-%m-%d %H:%M:%S') $MAML_SCRIPT: $MAML_RUN_ON"
        _maml_prepare_data || exit $?
        echo "run: $*"
        "$@"
    } 2>&1 | (trap '' INT; exec tee "${tee_opts[@]}" -- "$log") # tee outlives Ctrl-C to log python's last line
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

# Usage on -h/--help (exit 0) or on fewer than the 3 positional arguments (exit 1).
_maml_check_arg_count() {
    local usage=$1 target=$2
    shift 2
    if [[ ${1:-} == -h || ${1:-} == --help ]]; then
        "$usage" "$target"
        exit 0
    fi
    if (($# < 3)); then
        echo "error: expected at least 3 arguments, got $#" >&2
        "$usage" "$target" >&2
        exit 1
    fi
}

# maml_train_main TARGET DEVICE_ID EPOCH DATA_PATH [--key value ...]
maml_train_main() {
    local target=$1
    shift
    _maml_check_arg_count _maml_usage_train "$target" "$@"
    local device_id=$1 epoch=$2 data_path=$3
    shift 3
    _maml_common_checks "$device_id"
    [[ $epoch =~ ^[0-9]+$ && $epoch =~ [1-9] ]] || _maml_die "EPOCH '$epoch' is not a positive integer (e.g. 20000)"
    _maml_check_data_path "$data_path"
    _maml_parse_extra "device_target device_id data_path epoch" "$@"

    local output_dir=$MAML_OUTPUT_DIR
    if [[ -z $output_dir && -n $MAML_CONFIG_PATH ]]; then
        output_dir=$(_maml_yaml_value "$MAML_CONFIG_PATH" output_dir)
    fi
    if [[ -z $output_dir ]]; then
        output_dir=$(_maml_yaml_value "$MAML_REPO_ROOT/default_config.yaml" output_dir)
    fi
    cd "$MAML_REPO_ROOT" || _maml_die "cannot enter the repo root $MAML_REPO_ROOT"
    output_dir=$(_maml_abs "${output_dir:-output}") # relative config values are relative to the repo root
    [[ -e $output_dir && ! -d $output_dir ]] && _maml_die "output_dir '$output_dir' is a file: pass --output_dir a folder"
    mkdir -p -- "$output_dir" || _maml_die "cannot create output_dir '$output_dir'"

    _maml_export_device "$target" "$device_id"
    _maml_run_logged "$output_dir/train.log" 1 \
        "$MAML_PYTHON" omniglot_train.py --device_target "$target" --device_id "$device_id" --epoch "$epoch" \
        --data_path "$MAML_DATA_PATH" "${MAML_EXTRA[@]}"
    exit $?
}

# maml_eval_main TARGET DEVICE_ID DATA_PATH CKPT_PATH [--key value ...]
maml_eval_main() {
    local target=$1
    shift
    _maml_check_arg_count _maml_usage_eval "$target" "$@"
    local device_id=$1 data_path=$2 ckpt_path=$3
    shift 3
    _maml_common_checks "$device_id"
    _maml_check_data_path "$data_path"
    [[ -f $ckpt_path ]] || _maml_die "CKPT_PATH '$ckpt_path' does not exist or is not a file: pass a checkpoint written by training (e.g. output/best.ckpt)"
    local ckpt
    ckpt=$(realpath -- "$ckpt_path")
    _maml_parse_extra "device_target device_id data_path ckpt" "$@"
    cd "$MAML_REPO_ROOT" || _maml_die "cannot enter the repo root $MAML_REPO_ROOT"

    _maml_export_device "$target" "$device_id"
    local log="$ckpt.eval.log"
    if [[ -n $MAML_EVAL_REPORT ]]; then
        [[ -d $(dirname -- "$MAML_EVAL_REPORT") ]] ||
            _maml_die "--eval_report $MAML_EVAL_REPORT: its folder does not exist; create it or pass another path"
        log="${MAML_EVAL_REPORT%.json}.log"
    fi
    _maml_run_logged "$log" 0 \
        "$MAML_PYTHON" eval.py --device_target "$target" --device_id "$device_id" --data_path "$MAML_DATA_PATH" \
        --ckpt "$ckpt" "${MAML_EXTRA[@]}"
    exit $?
}
