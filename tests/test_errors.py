"""run_cli: what a command-line user sees when something goes wrong."""
import subprocess
import sys
from pathlib import Path

import pytest

from src.model_utils.errors import child_error

REPO = Path(__file__).resolve().parents[1]


def run(body, pipe_to_head=False):
    """Run `run_cli(main)` with `main` defined by body, in a fresh interpreter, optionally piped into `head -n 1`."""
    code = f"from src.model_utils.errors import UserError, run_cli\ndef main(argv):\n{body}\nrun_cli(main)\n"
    command = [sys.executable, "-c", code]
    if not pipe_to_head:
        return subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    writer = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)
    head = subprocess.run(["head", "-n", "1"], stdin=writer.stdout, capture_output=True, text=True)
    writer.stdout.close()
    stderr = writer.stderr.read().decode()
    return writer.wait(), head.stdout, stderr


def test_user_error_is_one_line_and_exit_code_2():
    proc = run("    raise UserError('data folder /x not found: pass --data_path')")
    assert proc.returncode == 2 and proc.stderr == "error: data folder /x not found: pass --data_path\n"


def test_closed_output_pipe_stops_quietly():
    code, out, err = run("    for i in range(10 ** 6):\n        print(i, flush=True)", pipe_to_head=True)
    assert out == "0\n" and code == 1
    assert "Traceback" not in err and "BrokenPipe" not in err, err


@pytest.mark.parametrize("argv, message", [(["--size"], "expected one argument"),
                                           (["--size", "3"], "invalid choice: 3 (choose from 1, 2)")])
def test_argument_errors_are_one_line_not_the_usage(argv, message):
    proc = run("    from src.model_utils.errors import ArgumentParser\n"
               "    parser = ArgumentParser()\n"
               "    parser.add_argument('--size', type=int, choices=[1, 2])\n"
               f"    parser.parse_args({argv!r})")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == f"error: argument --size: {message}\n", proc.stderr


@pytest.mark.parametrize("code, output, message", [
    (2, "loading\nerror: task_num must be >= 1, got 0\n", "task_num must be >= 1, got 0"),
    (1, "error: a first problem\nerror: the last problem\nlog: x.log (exit code 1)\n",
     "the run failed (exit code 1): the last problem"),
    (1, "Traceback (most recent call last):\n  File \"x.py\", line 1\nRuntimeError: boom\n\n",
     "the run failed (exit code 1): RuntimeError: boom"),
    (2, "usage: x\n", "the run failed (exit code 2): usage: x"),
    (-9, "", "the run failed (exit code -9): it printed nothing"),
], ids=["refused", "last_error", "traceback", "no_error_line", "silent"])
def test_child_error_keeps_the_childs_last_error_line(code, output, message):
    assert str(child_error("the run", code, output)) == message
