"""What a distributed launcher needs before msrun starts its processes, checked once in one process.

    python -m src.launch_plan train|eval RANK_SIZE MASTER_PORT [--key value ...]

The settings and paths are checked as omniglot_train.py / eval.py check them (plus task_num
against RANK_SIZE for training, and with --resume the checkpoint it would continue; for eval the
checkpoint is read, and an ensemble's members), as is the interpreter's name that msrun needs
(src/msrun.py), and omniglot.npy is built if it is missing or stale, so that a bad value is one
error line and exit code 2, not every rank failing after the cluster is up, and the ranks do not
build the data at once. Prints three lines: the log (as `python -m src.outputs` names it), the
folder for the ranks' own logs, and the scheduler's port (MASTER_PORT, or a free port of 127.0.0.1
when it is empty).
"""
import re
import socket
import sys

from src.checkpoint import load_for_inference, resumable
from src.config import load_config
from src.dataset import prepare_omniglot
from src.distributed import check_meta_batch
from src.ensemble import load_members
from src.errors import UserError, run_cli
from src.metrics import log
from src.msrun import rank_interpreter
from src.outputs import log_path

KINDS = ("train", "eval")


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


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 3 or argv[0] not in KINDS:
        raise UserError("usage: python -m src.launch_plan train|eval RANK_SIZE MASTER_PORT [--key value ...]")
    kind, rank_size, port, settings = argv[0], argv[1], argv[2], argv[3:]
    if not re.fullmatch(r"[0-9]{1,4}", rank_size) or int(rank_size) < 1:
        raise UserError(f"RANK_SIZE {rank_size!r} is not an integer from 1 to 9999: pass the number of devices "
                        "(e.g. 8)")
    rank_interpreter()
    if kind == "train":
        cfg = load_config(settings)
        check_meta_batch(cfg.task_num, int(rank_size))
        if cfg.resume:
            resumable(cfg.output_dir, cfg, lambda message: log(message, sys.stderr))
    else:
        cfg, _, meta = load_for_inference(settings)
        if cfg.ensemble:
            load_members(cfg, meta)
    port = check_port(port) if port else free_port()
    prepare_omniglot(cfg.data_path, cfg.npy_dir, cfg.imgsz, log=lambda message: log(message, sys.stderr))
    run_log = log_path(kind, cfg)  # creates a training's output folder: last, so no failure leaves it empty
    print(run_log)
    print(run_log.parent / "msrun_log" if kind == "train" else run_log.with_suffix(".msrun_log"))
    print(port)


if __name__ == "__main__":
    run_cli(main)
