"""MAML++'s options around the core: config checks, checkpoints holding the per-step meta-parameters,
eval.py, predict.py and export.py using them, and a short training run with every option on (the gradients
themselves are tested in test_maml.py)."""
import json
import re
import subprocess
import sys
from pathlib import Path

import mindspore as ms
import numpy as np
import pytest
from mindspore import nn

from predict import softmax
from src.data.demo_task import make_demo_task
from src.data.image_folder import read_queries, read_support
from src.engine import checkpoint
from src.engine.loading import inference_settings
from src.maml import AdaptAndScore, MetaTrainStep, build_maml
from src.meta_optimizer import MetaOptimizer
from src.model_utils.config import load_config
from src.model_utils.errors import UserError
from src.multi_step_loss import step_loss_weights

REPO = Path(__file__).resolve().parents[1]
TINY = ["--n_way", "3", "--num_filters", "8", "--num_blocks", "2"]
PLUSPLUS = ["--update_step", "2", "--learn_inner_lr", "--per_step_bn"]


pytestmark = pytest.mark.usefixtures("graph_mode_cpu")


@pytest.mark.parametrize("args, message", [
    (["--meta_lr_schedule", "linear"], "meta_lr_schedule 'linear' is not valid: use one of step, cosine"),
    (["--meta_lr_schedule", "cosine", "--min_meta_lr", "0.01"], "min_meta_lr must be >= 0 and below meta_lr (0.001)"),
    (["--msl_steps", "-1"], "msl_steps must be >= 0 (0 = off), got -1"),
    (["--first_order_steps", "-5"], "first_order_steps must be >= 0 (0 = off), got -5"),
    (["--per_step_bn", "--update_step", "0"], "per_step_bn needs update_step >= 1"),
    (["--learn_inner_lr", "--update_step", "0"], "learn_inner_lr needs update_step >= 1"),
])
def test_bad_option_values_are_refused(args, message):
    with pytest.raises(UserError) as err:
        load_config(args)
    assert message in str(err.value)


def test_options_are_off_by_default():
    cfg = load_config([])
    assert (cfg.msl_steps, cfg.learn_inner_lr, cfg.per_step_bn, cfg.meta_lr_schedule, cfg.first_order_steps) == \
        (0, False, False, "step", 0)
    learner = build_maml(cfg).learner
    assert not learner.inner_lrs and all(learner.adapted) and learner.steps == 0


def test_meta_training_runs_first_order_then_the_configured_order():
    """src/meta_optimizer.py builds the step that the trainer and the benchmarks run: with first_order_steps, a
    first-order step sharing the parameters and Adam runs the first meta-steps; the multi-step loss weights are
    an input while they anneal."""
    training = MetaOptimizer(load_config(TINY + ["--update_step", "2", "--first_order_steps", "2", "--msl_steps", "3"]))
    (first, w0), (again, _), (second, w2), (_, w3) = (training.step_at(step) for step in range(4))
    assert first is again is training.first_order_step and second is training.train_step and first is not second
    assert first.meta_gradient.first_order and not second.meta_gradient.first_order
    assert first.optimizer is second.optimizer is training.optimizer
    assert [training.first_order_at(step) for step in range(3)] == [True, True, False]
    assert len(w0) == len(w2) == 1 and w3 == ()
    np.testing.assert_array_equal(w0[0].asnumpy(), step_loss_weights(2, 3, 0))
    plain = MetaOptimizer(load_config(TINY + ["--first_order"]))
    assert plain.step_at(0)[0] is plain.step_at(10 ** 6)[0] is plain.train_step and plain.first_order_at(10 ** 6)


def _trained_checkpoint(path, cfg):
    """A training checkpoint of a MAML++ network whose per-step values are not their initial ones."""
    maml = build_maml(cfg)
    rng = np.random.default_rng(0)
    for p in maml.learner.trainable_params():
        p.set_data(ms.Tensor((p.asnumpy() + 0.1 * rng.standard_normal(p.shape)).astype(np.float32)))
    train_step = MetaTrainStep(maml, nn.Adam(maml.learner.trainable_params(), learning_rate=1e-3), cfg.update_step)
    AdaptAndScore(maml, 1)  # built last, as in the trainer: MindSpore names the parameters after the last holder
    checkpoint.save(path, train_step, step=3, cfg=cfg)
    return {p.name: p.asnumpy().copy() for p in maml.learner.trainable_params()}


def test_checkpoint_round_trip_of_per_step_parameters(tmp_path):
    cfg = load_config(TINY + PLUSPLUS)
    saved = _trained_checkpoint(tmp_path / "pp.ckpt", cfg)
    params, _ = checkpoint.read(tmp_path / "pp.ckpt")
    assert params["learner.bn0.gamma"].shape == (2, 8) and params["learner.inner_lr.conv0.weight"].shape == (2,)
    assert "optimizer.moment1.learner.inner_lr.fc.bias" in params
    # What eval.py and predict.py load: the options come from the checkpoint's config.
    loaded_cfg, params, meta = inference_settings(["--ckpt", str(tmp_path / "pp.ckpt")])
    assert (loaded_cfg.learn_inner_lr, loaded_cfg.per_step_bn, loaded_cfg.update_step) == (True, True, 2)
    maml = checkpoint.restore(build_maml(loaded_cfg), params, tmp_path / "pp.ckpt").learner
    assert {p.name for p in maml.trainable_params()} == set(saved)
    for p in maml.trainable_params():
        np.testing.assert_array_equal(p.asnumpy(), saved[p.name], err_msg=p.name)


@pytest.mark.parametrize("args, message", [
    (["--per_step_bn", "false"], "trained with per_step_bn=True but the config has per_step_bn=False: pass --per_step_bn True"),
    (["--update_step", "3"], "trained with update_step=2 but the config has update_step=3: pass --update_step 2"),
])
def test_checkpoint_of_other_per_step_shapes_is_refused(tmp_path, args, message):
    _trained_checkpoint(tmp_path / "pp.ckpt", load_config(TINY + PLUSPLUS))
    with pytest.raises(UserError) as err:
        inference_settings(["--ckpt", str(tmp_path / "pp.ckpt"), *args])
    assert message in str(err.value)


# ---------------------------------------------------------------- end to end on real Omniglot

@pytest.mark.slow
def test_mamlpp_training_then_eval_predict_and_export(omniglot_root, omniglot_npy_dir, tmp_path):
    """Every option on: 6 steps, first-order for the first 2, the multi-step loss for the first 4, the cosine
    meta learning rate. Then eval.py (10 fine-tuning steps, past the 2 trained), predict.py and export.py on
    the checkpoint alone: they take the options from it and use its learned values; the exported graph
    answers as predict.py does."""
    data = ["--data_path", str(omniglot_root), "--npy_dir", str(omniglot_npy_dir)]

    def run(script, *args):
        proc = subprocess.run([sys.executable, str(REPO / script), *args], capture_output=True, text=True,
                              timeout=900, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    out = tmp_path / "run"
    log = run("omniglot_train.py", *data, *TINY, *PLUSPLUS, "--task_num", "2", "--k_qry", "2", "--k_qry_test", "2",
              "--update_step_test", "10", "--val_tasks", "4", "--eval_batch", "4", "--log_every", "1", "--eval_every", "6",
              "--save_every", "6", "--meta_steps", "6", "--msl_steps", "4", "--first_order_steps", "2",
              "--meta_lr_schedule", "cosine", "--meta_lr", "0.002", "--min_meta_lr", "0.0001", "--cpu_threads", "1",
              "--output_dir", str(out))
    # Three graphs, each compiled on first use: first-order with the multi-step loss (step 1), second-order
    # with it (step 3), second-order without it (step 5).
    assert re.findall(r"step (\d+): graph compiled", log) == ["1", "3", "5"]
    assert "first-order to step 2, then second-order, on CPU, steps 1..6" in log
    rates = [float(r) for r in re.findall(r"meta_lr ([\d.e-]+)", log)]
    assert rates[-1] == pytest.approx(0.0001) and rates == sorted(rates, reverse=True)
    params, meta = checkpoint.read(out / "maml_step0000006.ckpt")
    initial = build_maml(load_config(TINY + PLUSPLUS)).learner
    for p in initial.trainable_params():
        assert not np.array_equal(params[p.name].asnumpy(), p.asnumpy()), f"{p.name} was not learned"

    report = tmp_path / "report.json"
    eval_log = run("eval.py", *data, "--ckpt", str(out / "best.ckpt"), "--eval_tasks", "8", "--eval_batch", "4",
                   "--eval_report", str(report))
    assert "3-way 1-shot" in eval_log and "10 inner steps with the learned per-step learning rates" in eval_log
    assert json.loads(report.read_text())["update_step_test"] == 10

    task = tmp_path / "task"
    make_demo_task(omniglot_root, task, n_way=3, k_spt=1, k_qry=2, seed=0)
    lines = run("predict.py", "--ckpt", str(out / "best.ckpt"), "--support_dir", str(task / "support"),
                "--query_dir", str(task / "query")).splitlines()
    assert len(lines) == 6 and all(len(line.split("\t")) == 3 for line in lines)

    run("export.py", "--ckpt", str(out / "best.ckpt"), "--file_name", str(tmp_path / "mamlpp"))
    graph = nn.GraphCell(ms.load(str(tmp_path / "mamlpp.mindir")))
    names, x_spt, y_spt, _ = read_support(task / "support", 28, 3)
    files, x_qry, _ = read_queries(task / "query", 28)
    probs = softmax(graph(ms.Tensor(x_spt[None]), ms.Tensor(y_spt[None]), ms.Tensor(x_qry[None])).asnumpy()[0])
    exported = [(f.name, names[int(p.argmax())], float(p.max())) for f, p in zip(files, probs)]
    predicted = [(name, cls, float(prob)) for name, cls, prob in (line.split("\t") for line in lines)]
    assert [row[:2] for row in exported] == [row[:2] for row in predicted]
    np.testing.assert_allclose([row[2] for row in exported], [row[2] for row in predicted], atol=1e-3)


@pytest.mark.slow
def test_benchmark_takes_the_options(tmp_path):
    """bench_meta_step.py passes config keys through: the step it times is training's first (here first-order,
    with first_order_steps), with the options, and says so."""
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_meta_step.py"), "--task_num", "1",
                           "--update_step", "2", "--steps", "1", "--warmup", "0", "--cpu_threads", "1",
                           "--num_filters", "8", "--learn_inner_lr", "--per_step_bn", "--msl_steps", "10",
                           "--first_order_steps", "3"],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (result["learn_inner_lr"], result["per_step_bn"], result["msl_steps"], result["update_step"],
            result["first_order_steps"], result["order"]) == (True, True, 10, 2, 3, "first")
    assert result["s_per_step"] > 0
