"""What a launch script needs before it starts omniglot_train.py or eval.py, checked once in one process.

    python -m src.model_utils.launch_plan train|eval [--key value ...]                        (standalone)
    python -m src.model_utils.launch_plan train|eval RANK_SIZE MASTER_PORT [--key value ...]  (data-parallel)

The settings and paths are checked as omniglot_train.py / eval.py check them before any work, the
backend too (a GPU or Ascend this machine cannot run is MindSpore's reason in one line; eval:
the checkpoint's settings as eval.py merges them, and an ensemble's members; training with --resume:
the checkpoint it would continue), so that a bad value is one error line and exit code 2 before the
log begins, not after the cluster is up. Standalone: the data must be there (the program builds
omniglot.npy, or omniglot_redrawn.npy with redraw, itself); prints the log's path. Data-parallel: also task_num against RANK_SIZE, CPU ranks
against the cores, the interpreter's name that msrun needs (src/model_utils/msrun.py), and omniglot.npy (or
omniglot_redrawn.npy) is built if it is missing or stale, so that the ranks do not build it at once; prints three fields: the log, the
folder for the ranks' own logs, and the scheduler's port (MASTER_PORT, or a free port of 127.0.0.1 when
it is empty). Each field ends with a NUL byte, which no path holds: the script reads them with
`mapfile -d ''`, so that no path can split into two fields.
The log: `<output_dir>/train.log` (training creates output_dir), or beside the eval report, its name
with `.log` (`CKPT.eval.log`, `CKPT.eval_ensembleN.log`).
"""
import os
import re
import socket
import sys

from src.data.dataset import check_omniglot_data, prepare_omniglot_for
from src.engine.eval_report import check_eval_report
from src.engine.run_folder import prepare_run_folder
from src.model_utils.config import load_config
from src.model_utils.errors import UserError, run_cli
from src.model_utils.log import log
from src.model_utils.msrun import rank_interpreter
from src.model_utils.outputs import check_output_file

KINDS = ("train", "eval")
LOG_HEADER = b"==== "  # the first line of a launch script's log (scripts/common.sh)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def check_port(text):
    """MASTER_PORT as given: a port from 1024 to 65535 that nothing listens on."""
    if not re.fullmatch(r"[0-9]{1,5}", text) or not 1024 <= int(text) <= 65535:
        raise UserError(f"MASTER_PORT {text!r} is not a port from 1024 to 65535: set another or leave it unset")
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", int(text)))
        except OSError:
            raise UserError(f"MASTER_PORT {text} is in use: set another or leave it unset (a free one is "
                            "chosen)") from None
    return int(text)


def checked_settings(kind, settings, rank_size=1):
    """The settings of a run of `kind` ("train" or "eval") with the command-line `settings`, after the
    checks its program makes before any work. The command line is parsed first and MindSpore loaded after
    (it takes seconds): a mistyped setting is answered at once."""
    cfg = load_config(settings, check=kind == "train")
    from src.engine.ensemble import load_members
    from src.engine.loading import inference_settings, load_for_resume
    from src.model_utils.device import check_available
    from src.model_utils.distributed import check_meta_batch

    if kind == "train":
        check_meta_batch(cfg.task_num, rank_size)
        if cfg.resume:
            load_for_resume(cfg.output_dir, cfg, lambda message: log(message, sys.stderr))
    else:
        cfg, _, meta = inference_settings(settings)
        if cfg.ensemble:
            load_members(cfg, meta)
    check_available(cfg.device_target)
    return cfg


def is_log(path):
    """Whether `path` is a log the launch scripts wrote (it starts with their header line), or empty."""
    try:
        with open(path, "rb") as f:
            start = f.read(len(LOG_HEADER))
    except OSError:
        return False
    return start in (b"", LOG_HEADER)


def log_path(kind, cfg):
    """Where the launch scripts append the log of `kind` ("train" or "eval") run with the settings cfg: checked
    as every output is (an earlier log may be appended to; a checkpoint or another file, also through a link,
    never) and created, so that the script appends to the file checked here."""
    if kind == "train":
        path, fix = prepare_run_folder(cfg) / "train.log", "pass another --output_dir"
    else:
        report = check_eval_report(cfg)
        path = report.with_name(report.name + ".log") if report.suffix == ".log" else report.with_suffix(".log")
        fix = "pass another --eval_report (its log goes beside it)"
    check_output_file(path, "log", "a log of the launch scripts", is_log, fix)
    try:
        path.touch()
    except OSError as err:
        raise UserError(f"cannot create the log {path} ({err.strerror or err}): pass another folder") from None
    return path.resolve()


def answer(*fields):
    """The plan on standard output, each field ended by a NUL byte."""
    sys.stdout.write("".join(f"{field}\0" for field in fields))
    sys.stdout.flush()


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in KINDS:
        raise UserError("usage: python -m src.model_utils.launch_plan train|eval [RANK_SIZE MASTER_PORT] [--key value ...]")
    kind, rest = argv[0], argv[1:]
    if not rest or rest[0].startswith("--"):  # standalone: the settings alone (a RANK_SIZE of -1 is not)
        cfg = checked_settings(kind, rest)
        check_omniglot_data(cfg.data_path, cfg.npy_dir, cfg.redraw)
        answer(log_path(kind, cfg))
        return
    if len(rest) < 2:
        raise UserError("usage: python -m src.model_utils.launch_plan train|eval RANK_SIZE MASTER_PORT [--key value ...]")
    rank_size, port, settings = rest[0], rest[1], rest[2:]
    if not re.fullmatch(r"[0-9]{1,4}", rank_size) or int(rank_size) < 1:
        raise UserError(f"RANK_SIZE {rank_size!r} is not an integer from 1 to 9999: pass the number of devices "
                        "(e.g. 8)")
    rank_interpreter()
    cfg = checked_settings(kind, settings, int(rank_size))
    cores = os.cpu_count() or 1
    if cfg.device_target == "CPU" and int(rank_size) > cores:
        raise UserError(f"RANK_SIZE {rank_size} is more CPU ranks than this machine has cores ({cores}): each rank "
                        f"computes on a core of its own; pass at most {cores}")
    port = check_port(port) if port else free_port()
    prepare_omniglot_for(cfg, log=lambda message: log(message, sys.stderr))
    run_log = log_path(kind, cfg)  # creates a training's output folder: last, so no failure leaves it empty
    answer(run_log, run_log.parent / "msrun_log" if kind == "train" else run_log.with_suffix(".msrun_log"), port)


if __name__ == "__main__":
    run_cli(main)
