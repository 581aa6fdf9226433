"""Data-parallel training and evaluation (src/model_utils/distributed.py, scripts/run_distribute_*.sh).

The fast tests check the task split, the gathering of evaluation results, the launch plan, the
launchers' arguments (a fake python for GPU/Ascend) and msrun's command line (src/model_utils/msrun.py). The
slow ones run msrun with 2 CPU ranks over loopback: 3 meta-steps equal one process's, distributed
evaluation equals one process's, and a 2-rank checkpoint resumes in one process on the same
trajectory.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from src.engine import checkpoint, run_folder
from src.engine.evaluation import evaluate
from src.model_utils import launch_plan, msrun
from src.model_utils.distributed import Ranks
from src.model_utils.errors import UserError
from conftest import run_script as run  # noqa: E402 (pytest puts tests/ on sys.path)

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "scripts"
TARGETS = {"cpu": "CPU", "gpu": "GPU", "ascend": "Ascend"}
TRAIN = {d: SCRIPTS / f"run_distribute_train_{d}.sh" for d in TARGETS}
EVAL = {d: SCRIPTS / f"run_distribute_eval_{d}.sh" for d in TARGETS}




def option(argv, key):
    return argv[argv.index(key) + 1]


# ----------------------------------------------------------------------------- task split and gathering


def test_meta_batch_split_into_equal_contiguous_shares():
    assert [Ranks(r, 4).share(32) for r in range(4)] == [slice(0, 8), slice(8, 16), slice(16, 24), slice(24, 32)]
    assert Ranks().share(5) == slice(0, 5)
    with pytest.raises(UserError) as err:
        Ranks(1, 3).share(32)
    assert str(err.value).startswith("task_num 32 cannot be split evenly over 3 ranks: pass a --task_num that is "
                                     "a multiple of 3 (e.g. 33)")


class _Scorer:
    """Stands in for AdaptAndScore: each task's accuracy after each step is a function of its images alone."""

    fine_tune_steps, every_step = 2, True

    def __call__(self, x_spt, y_spt, x_qry, y_qry):
        per_task = x_qry.asnumpy().mean(axis=(1, 2, 3, 4))
        accs = np.stack([per_task * (step + 1) for step in range(self.fine_tune_steps + 1)]).astype(np.float32)
        return np.zeros_like(accs), accs


@pytest.mark.parametrize("size", [2, 3, 8])
def test_evaluation_split_over_ranks_equals_one_process(size):
    """Batches dealt round-robin (uneven shares, a partial last batch, a rank with none) and summed give
    exactly the single process's per-task accuracies, hence the same mean and confidence interval."""
    images = np.random.default_rng(0).random((30, 20, 8, 8)).astype(np.float16)
    cfg = SimpleNamespace(eval_batch=4, n_way=3, k_spt=1, k_qry_test=2, eval_seed=5)
    single = evaluate(_Scorer(), images, np.arange(30), cfg, 23, True)
    filled = []

    class Rank(Ranks):
        def gather_columns(self, array):
            filled.append(array)
            return array

    for rank in range(size):
        evaluate(_Scorer(), images, np.arange(30), cfg, 23, True, Rank(rank, size))
    total = np.sum(filled, axis=0)  # what AllReduce sum returns on every rank
    result = evaluate(_Scorer(), images, np.arange(30), cfg, 23, True, SimpleNamespace(
        owns=lambda index: True, gather_columns=lambda array: total))
    assert result == single and single["tasks"] == 23


def test_training_cost_sums_the_cpu_time_of_all_ranks():
    """A run's recorded CPU seconds are those of every rank (the AllReduce sum, here of two ranks that each
    spent 2 s), added to those before the resume; wall-clock time is one rank's."""
    from src.engine.progress import RunCost

    class Rank(Ranks):
        def gather_columns(self, array):
            return array * self.size  # what AllReduce sum returns when every rank holds the same

    run_cost = RunCost(Rank(0, 2), {"train_seconds": 100.0, "cpu_seconds": 150.0})
    run_cost.wall, run_cost.cpu = time.time() - 1.0, time.process_time() - 2.0
    cost = run_cost()
    assert cost["cpu_seconds"] == pytest.approx(150.0 + 2 * 2.0, abs=0.2)
    assert cost["train_seconds"] == pytest.approx(100.0 + 1.0, abs=0.2)


PIN_PROBE = """
import os, sys, threading
from src.model_utils.distributed import pin_to_own_cores
stop = threading.Event()
threads = [threading.Thread(target=stop.wait, daemon=True)]
threads[0].start()
real_listdir = os.listdir

def listdir(path):  # a thread starts while pinning, a listed one has ended (tid above any pid_max)
    if len(threads) == 1:
        threads.append(threading.Thread(target=stop.wait, daemon=True))
        threads[1].start()
        return real_listdir(path) + [str(2 ** 22 + 7)]
    return real_listdir(path)

os.listdir = listdir
allowed = sorted(os.sched_getaffinity(0))
cores = pin_to_own_cores(0, len(allowed))
affinities = {tuple(sorted(os.sched_getaffinity(int(t)))) for t in real_listdir("/proc/self/task")}
stop.set()
print(cores == (allowed[0],), affinities == {(allowed[0],)})
"""


def test_pinning_skips_threads_that_ended_and_pins_those_started_meanwhile():
    """Every thread of a rank is pinned to its cores, also one started while pinning, and a listed
    thread that ended before its turn is skipped (pinning it would fail with ProcessLookupError)."""
    done = subprocess.run([sys.executable, "-c", PIN_PROBE], cwd=REPO, capture_output=True, text=True, check=False,
                          timeout=120)
    assert (done.returncode, done.stdout.split()) == (0, ["True", "True"]), done.stderr


# ----------------------------------------------------------------------------- launch plan (python checks)


def plan(capsys, *argv):
    """The fields of the plan, each ended by a NUL byte (which no path holds, so that none splits)."""
    launch_plan.main(list(argv))
    out = capsys.readouterr().out
    assert out.endswith("\0")
    return out.split("\0")[:-1]


def test_launch_plan_names_the_logs_and_a_free_port(capsys, tmp_path, omniglot_root, omniglot_npy_dir):
    data = ["--data_path", str(omniglot_root), "--npy_dir", str(omniglot_npy_dir)]
    out = tmp_path / "out"
    log, log_dir, port = plan(capsys, "train", "2", "", "--task_num", "4", "--output_dir", str(out), *data)
    assert (log, log_dir) == (str(out / "train.log"), str(out / "msrun_log")) and 1024 <= int(port) <= 65535
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        busy = sock.getsockname()[1]
        sock.listen()
        with pytest.raises(UserError, match=f"MASTER_PORT {busy} is in use"):
            plan(capsys, "train", "2", str(busy))
    assert plan(capsys, "train", "1", str(busy), "--output_dir", str(out), *data)[2] == str(busy)


@pytest.mark.parametrize("ranks", [["2", ""], []], ids=["data-parallel", "standalone"])
def test_launch_plan_checks_the_checkpoint_a_resume_continues(tmp_path, ranks):
    """A --resume that training would refuse (the ranks: after joining the cluster) is one error line before
    the log begins, for both kinds of launcher."""
    from tests.tiny_checkpoints import TINY, save_tiny_checkpoint

    tiny = ["--n_way", "3", *TINY]
    save_tiny_checkpoint(run_folder.step_checkpoint_path(tmp_path, 5), "--n_way", "3")
    with pytest.raises(UserError, match="was trained with num_filters=8 but the config has num_filters=16"):
        launch_plan.main(["train", *ranks, *tiny, "--num_filters", "16", "--task_num", "4", "--resume",
                          "--output_dir", str(tmp_path)])
    with pytest.raises(UserError, match=f"the run in {tmp_path} is already at step 5 and meta_steps is 5: pass a larger"):
        launch_plan.main(["train", *ranks, *tiny, "--meta_steps", "5", "--task_num", "4", "--resume",
                          "--output_dir", str(tmp_path)])


def test_launch_plan_standalone_names_the_log_only(capsys, tmp_path, omniglot_root, omniglot_npy_dir):
    """Standalone (no RANK_SIZE, MASTER_PORT): one field, the log; omniglot.npy is left to the program."""
    out = tmp_path / "out"
    assert plan(capsys, "train", "--data_path", str(omniglot_root), "--npy_dir", str(tmp_path / "npy"),
                "--output_dir", str(out)) == [str(out / "train.log")]
    assert not (tmp_path / "npy").exists()


@pytest.mark.parametrize("argv, message", [
    (["train", "0", ""], "RANK_SIZE '0' is not an integer from 1 to 9999"),
    (["train", "two", ""], "RANK_SIZE 'two' is not an integer from 1 to 9999"),
    (["train", "-1", ""], "RANK_SIZE .-1. is not an integer from 1 to 9999"),
    (["train", "\u00b2", ""], "RANK_SIZE '\u00b2' is not an integer from 1 to 9999"),
    (["train", "2", "\u00b2"], "MASTER_PORT '\u00b2' is not a port from 1024 to 65535"),
    (["train", "3", "", "--task_num", "32"], "task_num 32 cannot be split evenly over 3 ranks"),
    (["train", "2", "", "--task_num", "x"], "--task_num takes an integer, got 'x'"),
    (["train", "2", "80"], "MASTER_PORT '80' is not a port from 1024 to 65535"),
    (["eval", "2", ""], "no checkpoint given"),
    (["eval", "--npy_dir", "x"], "no checkpoint given"),
    (["train", "2"], r"usage: python -m src.model_utils.launch_plan train\|eval RANK_SIZE MASTER_PORT"),
    (["run"], r"usage: python -m src.model_utils.launch_plan train\|eval \[RANK_SIZE MASTER_PORT\]"),
    (["train", "--task_num", "0"], "task_num must be >= 1"),
])
def test_launch_plan_refuses_bad_settings(argv, message):
    with pytest.raises(UserError, match=message):
        launch_plan.main(argv)


# ----------------------------------------------------------------------------- launchers


@pytest.mark.parametrize("script", [*TRAIN.values(), *EVAL.values()], ids=lambda p: p.name)
def test_launchers_are_valid_bash_and_print_usage(script):
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    code, out = run(script)
    positional = "RANK_SIZE EPOCH DATA_PATH" if script in TRAIN.values() else "RANK_SIZE DATA_PATH CKPT_PATH"
    assert (code, out.splitlines()) == (2, [f"error: expected {positional} [--key value ...], got 0 arguments: see "
                                            f"bash scripts/{script.name} --help"])
    code, out = run(script, "--help")
    assert code == 0 and "RANK_SIZE" in out and "msrun" in out


@pytest.mark.parametrize("args, code, message", [
    (["0", "3", "{data}"], 2, "error: RANK_SIZE '0' is not an integer from 1 to 9999"),
    (["-1", "3", "{data}"], 2, "error: RANK_SIZE '-1' is not an integer from 1 to 9999"),
    (["2", "3", "{data}", "--task_num", "5"], 2, "error: task_num 5 cannot be split evenly over 2 ranks"),
    (["2", "x", "{data}"], 2, "error: --meta_steps takes an integer, got 'x'"),
    (["2", "3", "{data}/absent"], 2, "error: no Omniglot data"),
    (["2", "3", "{data}", "--device_id", "1"], 2, "error: --device_id is set by this script"),
], ids=["rank_size", "negative_rank_size", "indivisible", "epoch", "data_path", "device_id"])
def test_train_launcher_rejects_bad_arguments_before_any_rank_starts(tmp_path, args, code, message):
    data = tmp_path / "data"
    data.mkdir()
    out_dir = tmp_path / "out"
    got, out = run(TRAIN["cpu"], *(a.format(data=data) for a in args), "--output_dir", out_dir,
                   env={"PYTHON": sys.executable})
    assert (got, message in out) == (code, True), out
    assert "Traceback" not in out and "msrun" not in out.replace("(msrun)", "") and not out_dir.exists()


def test_eval_launcher_rejects_a_missing_checkpoint(tmp_path):
    (tmp_path / "data").mkdir()
    code, out = run(EVAL["cpu"], "2", tmp_path / "data", tmp_path / "absent.ckpt", env={"PYTHON": sys.executable})
    assert code == 2 and "error: checkpoint" in out and "absent.ckpt not found" in out
    assert "Traceback" not in out and not list(tmp_path.glob("absent*"))


def launch(script, args, fake_python, log, log_dir, cwd, **env):
    """(output, the launch plan's argv, the call that starts msrun) of a data-parallel launcher run with the fake
    interpreter, whose plan names `log` and `log_dir`."""
    code, out = run(script, *args, cwd=cwd, env={"PYTHON": fake_python.path, "FAKE_LOG": str(log),
                                                 "FAKE_LOG_DIR": str(log_dir), **env})
    assert code == 0, out
    planned, started = fake_python.calls()
    return out, planned["argv"], started


@pytest.mark.parametrize("device", ["gpu", "ascend"])
def test_train_launcher_starts_msrun_with_one_worker_per_device(device, tmp_path, fake_python):
    out_dir = tmp_path / "out"
    out_dir.mkdir()  # the launch plan creates it
    out, planned, started = launch(TRAIN[device], ["8", "100", "data", "--output_dir", "out", "--task_num", "32"],
                                   fake_python, out_dir / "train.log", out_dir / "msrun_log", tmp_path, MASTER_PORT="34567")
    assert planned[:5] == ["-m", "src.model_utils.launch_plan", "train", "8", "34567"]
    # src.model_utils.msrun starts the ranks (its command line: test_msrun_command_starts_the_ranks_on_this_host).
    assert started["argv"][:5] == ["-m", "src.model_utils.msrun", "8", "34567", str(out_dir / "msrun_log")]
    script = started["argv"][5:]
    assert script[0] == "omniglot_train.py"
    assert option(script, "--device_target") == TARGETS[device] and option(script, "--meta_steps") == "100"
    assert option(script, "--output_dir") == str(out_dir) and option(script, "--task_num") == "32"
    assert "--device_id" not in script  # msrun gives each rank its card (DEVICE_ID = local rank)
    assert started["cwd"] == str(REPO) and "DEVICE_ID" not in started["env"]
    assert f"{out_dir}/msrun_log/worker_N.log" in out
    assert "RANK_SIZE=8" in (out_dir / "train.log").read_text()


@pytest.mark.parametrize("device", ["cpu", "ascend"])
def test_eval_launcher_starts_msrun_and_logs_beside_the_report(device, tmp_path, fake_python):
    report = tmp_path / "r.json"
    out, planned, started = launch(EVAL[device], ["2", "data", "best.ckpt", "--eval_report", "r.json"], fake_python,
                                   tmp_path / "r.log", tmp_path / "r.msrun_log", tmp_path)
    assert planned[:5] == ["-m", "src.model_utils.launch_plan", "eval", "2", ""]
    assert started["argv"][:5] == ["-m", "src.model_utils.msrun", "2", "23456", str(tmp_path / "r.msrun_log")]
    script = started["argv"][5:]
    assert script[0] == "eval.py" and option(script, "--ckpt") == str(tmp_path / "best.ckpt")
    assert option(script, "--eval_report") == str(report)
    assert (tmp_path / "r.log").is_file()


def test_msrun_command_starts_the_ranks_on_this_host(tmp_path):
    """The command line the launch scripts and bench_meta_step.py share: msrun run by this interpreter, each
    rank started as python3 from this interpreter's folder, MindSpore's warnings off unless GLOG_v is set."""
    python = tmp_path / "venv" / "bin" / "python3"
    argv, env = msrun.command(4, 34567, tmp_path / "logs", ["omniglot_train.py", "--meta_steps", 3], python=str(python),
                              environ={"PATH": "/usr/bin", "HOME": "/home/me"})
    assert argv[:3] == [str(python), "-m", "mindspore.parallel.cluster.run"]
    assert [option(argv, key) for key in ("--worker_num", "--local_worker_num", "--master_addr", "--master_port",
                                          "--log_dir", "--join")] == \
        ["4", "4", "127.0.0.1", "34567", str(tmp_path / "logs"), "True"]
    assert argv[argv.index("True") + 1:] == ["python3", "omniglot_train.py", "--meta_steps", "3"]
    assert env == {"PATH": f"{python.parent}:/usr/bin", "HOME": "/home/me", "PYTHONUNBUFFERED": "1", "GLOG_v": "3"}
    assert msrun.command(2, 1, "l", ["s.py"], python=str(python), environ={"GLOG_v": "1"})[1]["GLOG_v"] == "1"


def test_msrun_needs_an_interpreter_named_python_or_python3(tmp_path, monkeypatch):
    """msrun starts each rank as python or python3 from PATH: another name is refused in the launch plan, before
    any output is written, unless a python3 lies beside it."""
    odd = tmp_path / "bin" / "python3.11"
    odd.parent.mkdir()
    assert msrun.rank_interpreter(str(tmp_path / "bin" / "python")) == "python"
    monkeypatch.setattr(sys, "executable", str(odd))
    with pytest.raises(UserError, match=f"msrun starts each rank as python or python3, and {odd} has neither"):
        launch_plan.main(["train", "2", "", "--output_dir", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()
    (tmp_path / "bin" / "python3").write_text("")
    (tmp_path / "bin" / "python3").chmod(0o755)
    assert msrun.rank_interpreter() == "python3"


@pytest.mark.parametrize("sigint", ["default", "ignored"])
def test_msrun_interrupted_exits_130(tmp_path, sigint):
    """`python -m src.model_utils.msrun 1 PORT LOGS sleeper.py`, then Ctrl-C (SIGINT to its process group) once the rank runs:
    exit code 130 and "error: interrupted" on a line of its own, though the rank's output ends mid-line (msrun alone
    exits 0). The same when started with SIGINT ignored, as a job started with `&` by a script is: msrun stops the
    ranks on SIGINT all the same, so the run must not pass for finished."""
    sleeper = tmp_path / "sleeper.py"
    sleeper.write_text('import time\nprint("up", end="", flush=True)  # a rank whose output ends mid-line\ntime.sleep(120)\n')
    ignore = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if sigint == "ignored" else None
    proc = subprocess.Popen([sys.executable, "-m", "src.model_utils.msrun", "1", str(launch_plan.free_port()), str(tmp_path / "logs"),
                             str(sleeper)], cwd=REPO, start_new_session=True, preexec_fn=ignore,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    worker_log, deadline = tmp_path / "logs" / "worker_0.log", time.time() + 120
    while not (worker_log.exists() and "up" in worker_log.read_text()) and time.time() < deadline:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130 and out.splitlines()[-1] == "error: interrupted", out


def test_msrun_fails_when_a_rank_fails(tmp_path):
    """`python -m src.model_utils.msrun 1 PORT LOGS failing.py`, whose rank exits 3: msrun's exit code is not 0."""
    failing = tmp_path / "failing.py"
    failing.write_text("raise SystemExit(3)\n")
    done = subprocess.run([sys.executable, "-m", "src.model_utils.msrun", "1", str(launch_plan.free_port()), str(tmp_path / "logs"),
                           str(failing)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0, done.stdout + done.stderr


# ----------------------------------------------------------------------------- 2 CPU ranks (msrun)

TINY = ["--num_filters", "8", "--num_blocks", "2", "--task_num", "4", "--k_qry", "2", "--k_qry_test", "2",
        "--update_step", "1", "--update_step_test", "1", "--val_tasks", "4", "--eval_batch", "4", "--log_every", "1",
        "--eval_every", "0", "--save_every", "3", "--cpu_threads", "1"]


@pytest.fixture(scope="module")
def runs(omniglot_root, omniglot_npy_dir, tmp_path_factory):
    """One process trains 5 steps (checkpoints at 3 and 5); 2 ranks train 3 steps, then one process resumes
    their checkpoint to step 5."""
    base = tmp_path_factory.mktemp("dist")
    data = ["--data_path", str(omniglot_root), "--npy_dir", str(omniglot_npy_dir)]

    def train(out, *args):
        proc = subprocess.run([sys.executable, str(REPO / "omniglot_train.py"), *data, *TINY, "--output_dir", str(out),
                               *args], capture_output=True, text=True, timeout=600, cwd=base)
        assert proc.returncode == 0, proc.stderr

    train(base / "one", "--meta_steps", "5")
    code, out = run(TRAIN["cpu"], "2", "3", omniglot_root, "--npy_dir", omniglot_npy_dir, *TINY,
                    "--output_dir", base / "two", cwd=base, env={"PYTHON": sys.executable}, timeout=600)
    assert code == 0, out
    ranks_log = out
    (base / "resumed").mkdir()
    for path in (base / "two").glob("maml_step*.ckpt"):
        (base / "resumed" / path.name).write_bytes(path.read_bytes())
    train(base / "resumed", "--meta_steps", "5", "--resume")
    return SimpleNamespace(base=base, data=data, log=ranks_log)


def losses(out):
    return {r["step"]: r["loss"] for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())
            if r["event"] == "train"}


def largest_relative_difference(a_path, b_path):
    """max |a - b| / max |a| over each float tensor of two checkpoints (weights and Adam moments)."""
    a, b = checkpoint.read(a_path)[0], checkpoint.read(b_path)[0]
    assert a.keys() == b.keys()
    worst = 0.0
    for name in a.keys():
        x, y = a[name].asnumpy(), b[name].asnumpy()
        if x.dtype.kind == "f" and x.size > 1 and np.abs(x).max() > 0:
            worst = max(worst, float(np.abs(x - y).max() / np.abs(x).max()))
    return worst


def trajectory_difference(reference, other, step):
    """Largest relative differences from `reference` of `other`'s logged losses and of its parameters at
    `step`, with their steps checked to be `other`'s."""
    a, b = losses(reference), losses(other)
    loss_diff = max(abs(b[s] - a[s]) / abs(a[s]) for s in b)
    name = run_folder.step_checkpoint_path(reference, step).name
    return sorted(b), loss_diff, largest_relative_difference(reference / name, other / name)


@pytest.mark.slow
def test_two_ranks_follow_the_single_process_trajectory(runs):
    steps, loss_diff, param_diff = trajectory_difference(runs.base / "one", runs.base / "two", 3)
    assert steps == [1, 2, 3]
    print(f"2 ranks vs 1 process after 3 steps: largest relative difference of losses {loss_diff:.2e}, "
          f"of parameters {param_diff:.2e}")
    assert loss_diff < 1e-5 and param_diff < 1e-4
    # Rank 0 alone wrote: one metrics file, one set of checkpoints, the log lines once; one log per rank.
    assert sorted(p.name for p in (runs.base / "two").iterdir()) == \
        ["best.ckpt", "maml_step0000003.ckpt", "metrics.jsonl", "msrun_log", "train.log"]
    assert runs.log.count("done: 3 steps") == 1 and "on CPU x 2 ranks" in runs.log
    assert {"worker_0.log", "worker_1.log"} <= {p.name for p in (runs.base / "two" / "msrun_log").iterdir()}
    assert "done: 3 steps" not in (runs.base / "two" / "msrun_log" / "worker_1.log").read_text()


@pytest.mark.slow
def test_two_rank_checkpoint_resumes_in_one_process_on_the_same_trajectory(runs):
    steps, loss_diff, param_diff = trajectory_difference(runs.base / "one", runs.base / "resumed", 5)
    assert steps == [4, 5]
    print(f"2 ranks then 1 process vs 1 process after 5 steps: largest relative difference of losses "
          f"{loss_diff:.2e}, of parameters {param_diff:.2e}")
    assert loss_diff < 1e-5 and param_diff < 1e-4


@pytest.mark.slow
def test_distributed_evaluation_equals_one_process(runs, omniglot_root, omniglot_npy_dir):
    """10 tasks in batches of 4: rank 0 scores batches 0 and 2 (2 tasks), rank 1 batch 1."""
    ckpt = runs.base / "two" / "maml_step0000003.ckpt"
    settings = ["--npy_dir", omniglot_npy_dir, "--eval_tasks", "10", "--eval_batch", "4", "--cpu_threads", "1"]
    code, out = run(SCRIPTS / "run_eval_cpu.sh", "0", omniglot_root, ckpt, *settings, "--eval_report",
                    runs.base / "single.json", env={"PYTHON": sys.executable}, timeout=600)
    assert code == 0, out
    code, out = run(EVAL["cpu"], "2", omniglot_root, ckpt, *settings, "--eval_report", runs.base / "ranks.json",
                    env={"PYTHON": sys.executable}, timeout=600)
    assert code == 0, out
    single, ranks = (json.loads((runs.base / name).read_text()) for name in ("single.json", "ranks.json"))
    assert (single["ranks"], ranks["ranks"], ranks["tasks"]) == (1, 2, 10)
    assert (ranks["acc"], ranks["ci95"]) == (single["acc"], single["ci95"])
    assert "test accuracy" in (runs.base / "ranks.log").read_text()
