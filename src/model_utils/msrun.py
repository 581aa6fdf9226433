"""Start data-parallel ranks on this host with msrun, MindSpore's launcher: the one command line that the
distributed launch scripts (scripts/common_distribute.sh) and benchmarks/bench_meta_step.py use.

    python -m src.model_utils.msrun RANK_SIZE MASTER_PORT LOG_DIR SCRIPT [ARG ...]

Runs `python -m mindspore.parallel.cluster.run` with --worker_num and --local_worker_num RANK_SIZE,
--master_addr 127.0.0.1, --master_port, --log_dir (worker_N.log per rank, scheduler.log) and --join
True, and exits with its exit code, the ranks'; interrupted (Ctrl-C, which msrun answers by stopping
the ranks and exiting 0), with 130, so that a chained command does not take the run for finished. msrun
acts on SIGINT even where it was ignored (a job a script starts with `&`), so this wrapper does too.
msrun starts each rank as `python3 SCRIPT ...` (or python) from PATH, so this interpreter's folder
goes first on PATH. GLOG_v defaults to 3 (MindSpore's errors only: joining the cluster logs pages of
warnings).
"""
import os
import signal
import subprocess
import sys
from pathlib import Path

from src.model_utils.errors import UserError, run_cli

RANK_NAMES = ("python", "python3")


def rank_interpreter(python=None):
    """The name msrun starts the ranks with: that of `python` (default: this interpreter), or the
    python3 beside it."""
    path = Path(sys.executable if python is None else python)
    if path.name in RANK_NAMES:
        return path.name
    if os.access(path.parent / "python3", os.X_OK):
        return "python3"
    raise UserError(f"msrun starts each rank as python or python3, and {path} has neither name nor a python3 "
                    "beside it: run with an interpreter of that name (the launch scripts: set PYTHON to it)")


def command(rank_size, port, log_dir, script_argv, python=None, environ=None):
    """(argv, environment) of msrun run by `python` (default: this interpreter) with `environ` (default:
    this environment), starting `rank_size` ranks of `script_argv` (a script and its arguments)."""
    python = sys.executable if python is None else python
    environ = os.environ if environ is None else environ
    argv = [python, "-m", "mindspore.parallel.cluster.run", "--worker_num", str(rank_size),
            "--local_worker_num", str(rank_size), "--master_addr", "127.0.0.1", "--master_port", str(port),
            "--log_dir", str(log_dir), "--join", "True", rank_interpreter(python), *map(str, script_argv)]
    env = dict(environ, PATH=os.pathsep.join([str(Path(python).parent), environ.get("PATH", "")]),
               PYTHONUNBUFFERED="1", GLOG_v=environ.get("GLOG_v") or "3")
    return argv, env


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 4:
        raise UserError("usage: python -m src.model_utils.msrun RANK_SIZE MASTER_PORT LOG_DIR SCRIPT [ARG ...]")
    args, env = command(argv[0], argv[1], argv[2], argv[3:])
    sys.stdout.flush()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    proc = subprocess.Popen(args, env=env)
    signal.signal(signal.SIGTERM, lambda *_: proc.terminate())  # msrun gets the SIGTERM, as when it ran in our place
    try:
        code = proc.wait()
    except KeyboardInterrupt:
        proc.wait()  # msrun stops the ranks on the same Ctrl-C
        print(flush=True)  # the ranks' output msrun echoes may end mid-line: the error line starts a new one
        raise
    return code


if __name__ == "__main__":
    sys.exit(run_cli(main))
