"""Every formulation of the convolution (grouped, per task) and batch norm (fused, elementary) computes what
grouped + fused computes: the forward pass, the adapted weights and the meta-gradient, in both orders and with
the MAML++ options on; each formulation's second-order meta-gradient passes the finite-difference check, and a
first-order gradient fails it. `auto` resolves per backend as documented, and a checkpoint does not record it."""
import numpy as np
import pytest
import mindspore as ms

from src.model_utils.config import load_config
from src.formulation import AUTO, resolve
from src.learner import Learner
from src.maml import MAML, MetaGradient, build_maml
from tests.test_maml import (BLOCKS, FILTERS, N_WAY, TASKS, UPDATE_LR, UPDATE_STEP, Adapt, _finite_differences, _flat,
                             _relative_error, _set_params, _tensors, batch)  # noqa: F401 (batch: a fixture)

pytestmark = pytest.mark.usefixtures("graph_mode_cpu")

REFERENCE = ("grouped", "fused")
OTHERS = [("grouped", "elementary"), ("per_task", "fused"), ("per_task", "elementary"), ("matmul", "fused"),
          ("matmul", "elementary")]
# float32 sums in another order: the formulations agree to this fraction of the largest magnitude.
RTOL = 1e-4
STEP_WEIGHTS = np.float32([0.3, 0.7])  # the multi-step loss


def _maml(conv_impl, bn_impl):
    """MAML++ (per-step batch norm, learned inner learning rates) with per-step values that differ by step."""
    learner = Learner(N_WAY, FILTERS, BLOCKS, seed=0, bn_steps=UPDATE_STEP, lr_steps=UPDATE_STEP,
                      update_lr=UPDATE_LR, conv_impl=conv_impl, bn_impl=bn_impl)
    rng = np.random.default_rng(3)
    for p in learner.trainable_params():
        if p.name.startswith("bn"):
            p.set_data(ms.Tensor(((1.0 if "gamma" in p.name else 0.0) + 0.3 * rng.standard_normal(p.shape))
                                 .astype(np.float32)))
        elif p.name.startswith("inner_lr"):
            p.set_data(ms.Tensor((UPDATE_LR * (0.5 + rng.random(p.shape))).astype(np.float32)))
    return MAML(learner, UPDATE_LR)


def _outputs(maml, batch, second_order):
    """Query logits before adaptation, the adapted weights and the meta-gradient of the multi-step loss."""
    x_spt, y_spt, x_qry, _ = _tensors(batch)
    learner = maml.learner
    start = learner.per_task(TASKS)
    logits = learner.forward(x_qry, start, 0).asnumpy()
    adapted = Adapt(maml, UPDATE_STEP, second_order)(x_spt, y_spt, *start)
    (loss, _), grads = MetaGradient(maml, UPDATE_STEP, not second_order)(*_tensors((*batch, STEP_WEIGHTS)))
    return {"forward": logits, "adapted": _flat([w.asnumpy() for w in adapted]),
            "meta_gradient": _flat([g.asnumpy() for g in grads]), "loss": float(loss)}


def _close(got, expected):
    np.testing.assert_allclose(got, expected, rtol=0, atol=RTOL * np.abs(expected).max())


@pytest.fixture(scope="module")
def reference(batch):
    maml = _maml(*REFERENCE)
    return {order: _outputs(maml, batch, order) for order in (False, True)}


@pytest.mark.parametrize("second_order", [False, True], ids=["first_order", "second_order"])
@pytest.mark.parametrize("formulation", OTHERS, ids="+".join)
def test_formulation_equals_grouped_fused(batch, reference, formulation, second_order):
    got, expected = _outputs(_maml(*formulation), batch, second_order), reference[second_order]
    for key in ("forward", "adapted", "meta_gradient"):
        _close(got[key], expected[key])
    assert got["loss"] == pytest.approx(expected["loss"], rel=RTOL)
    # The comparison can fail: the two orders' meta-gradients differ by far more than the tolerance.
    other = reference[not second_order]["meta_gradient"]
    assert np.abs(other - expected["meta_gradient"]).max() > 100 * RTOL * np.abs(expected["meta_gradient"]).max()


@pytest.mark.parametrize("formulation", OTHERS, ids="+".join)
def test_formulation_meta_gradient_matches_finite_differences(batch, formulation):
    """Second-order meta-gradient of the multi-step loss against finite differences in two directions (a random
    one, and where the two orders disagree); the first-order gradient is the negative control. (grouped + fused:
    tests/test_maml.py.)"""
    maml = _maml(*formulation)
    theta = [p.asnumpy().copy() for p in maml.learner.trainable_params()]
    inputs = (*batch, STEP_WEIGHTS)
    second = MetaGradient(maml, UPDATE_STEP, first_order=False)
    g2 = _flat([g.asnumpy() for g in second(*_tensors(inputs))[1]])
    g1 = _flat([g.asnumpy() for g in MetaGradient(maml, UPDATE_STEP, first_order=True)(*_tensors(inputs))[1]])
    rng = np.random.default_rng(11)
    directions = [rng.standard_normal(g2.size), g2 - g1]
    directions = [d / np.linalg.norm(d) for d in directions]
    fds = _finite_differences(maml, inputs, theta, second, directions)
    err2, err1 = _relative_error(fds, g2, directions), _relative_error(fds, g1, directions)
    print(f"{'+'.join(formulation)}: relative error second order {err2:.4f}, first order {err1:.4f}")
    assert err2 < 0.05
    assert err1 > 0.1 and err1 > 5 * err2


@pytest.mark.parametrize("target", ["CPU", "GPU", "Ascend"])
def test_auto_resolves_per_backend_and_explicit_choices_win(target):
    cfg = load_config(["--device_target", target])
    assert resolve(cfg) == AUTO[target]
    learner = build_maml(cfg).learner
    assert (learner.conv_impl, learner.bn_impl) == AUTO[target]
    assert AUTO["Ascend"][0] == "matmul" and AUTO["GPU"][1] == AUTO["Ascend"][1] == "elementary"
    cfg = load_config(["--device_target", target, "--conv_impl", "per_task", "--bn_impl", "fused"])
    assert resolve(cfg) == ("per_task", "fused")


@pytest.mark.parametrize("args", [["--conv_impl", "depthwise"], ["--bn_impl", "Fused"]])
def test_unknown_formulation_is_refused(args):
    from src.model_utils.errors import UserError
    with pytest.raises(UserError, match=f"{args[0][2:]} .* is not valid: use one of auto, "):
        load_config(args)


def test_checkpoint_of_one_formulation_scores_identically_with_another(tmp_path, batch):
    """The formulation is not part of a checkpoint's shape: trained with grouped + fused (CPU's auto), it loads
    for an Ascend-style matmul + elementary network, which then predicts what the original predicts."""
    from src.engine import checkpoint
    from src.engine.loading import inference_settings
    from src.engine.trained_settings import check_compatible
    from src.maml import AdaptAndScore
    from tests.tiny_checkpoints import save_tiny_checkpoint

    settings = ["--n_way", str(N_WAY), "--update_step", str(UPDATE_STEP), "--learn_inner_lr", "true",
                "--per_step_bn", "true", "--conv_impl", "grouped", "--bn_impl", "fused"]
    path = save_tiny_checkpoint(tmp_path / "tiny.ckpt", *settings)
    predictions = []
    for formulation in (["--conv_impl", "grouped", "--bn_impl", "fused"],
                        ["--conv_impl", "matmul", "--bn_impl", "elementary"]):
        cfg, params, meta = inference_settings(["--ckpt", str(path), *formulation])
        check_compatible(meta, cfg, path)
        maml = build_maml(cfg)
        assert (maml.learner.conv_impl, maml.learner.bn_impl) == (formulation[1], formulation[3])
        checkpoint.restore(maml.learner, params, path)
        x_spt, y_spt, x_qry, _ = _tensors(batch)  # 12x12 images: the network ends in a spatial mean
        predictions.append(AdaptAndScore(maml, UPDATE_STEP).predict(x_spt, y_spt, x_qry).asnumpy())
    assert np.abs(predictions[0]).max() > 0
    _close(predictions[1], predictions[0])


@pytest.mark.slow
def test_benchmark_times_the_formulation_it_is_given(tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_meta_step.py"
    proc = subprocess.run([sys.executable, str(script), "--task_num", "2", "--update_step", "1", "--steps", "1",
                           "--warmup", "0", "--cpu_threads", "1", "--num_filters", "8", "--conv_impl", "per_task",
                           "--bn_impl", "elementary"], capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (result["conv_impl"], result["bn_impl"]) == ("per_task", "elementary")
