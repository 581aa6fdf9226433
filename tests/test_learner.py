"""The Learner: shapes, initialisation, and the batched grouped-conv forward against a per-task reference."""
import numpy as np
import pytest
import mindspore as ms
from mindspore import nn, ops

from src.learner import BN_EPS, PARAMS_PER_BLOCK, Learner
from src.maml import MAML

TASKS, NUM, N_WAY, IMGSZ, FILTERS, BLOCKS = 3, 5, 4, 14, 6, 3


pytestmark = pytest.mark.usefixtures("graph_mode_cpu")


class Forward(nn.Cell):
    """learner.forward as a compiled cell; weights unpacked (a tuple argument would be a constant)."""

    def __init__(self, learner):
        super().__init__()
        self.learner = learner

    def construct(self, x, *weights):
        return self.learner.forward(x, weights)


@pytest.fixture(scope="module")
def learner():
    return Learner(N_WAY, num_filters=FILTERS, num_blocks=BLOCKS, seed=3)


@pytest.fixture(scope="module")
def forward(learner):
    return Forward(learner)


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).random((TASKS, NUM, 1, IMGSZ, IMGSZ)).astype(np.float32)


@pytest.fixture(scope="module")
def task_weights(learner):
    """Per-task weights that differ between tasks: the meta-parameters plus a different perturbation per task."""
    rng = np.random.default_rng(1)
    weights = []
    for p in learner.weights:
        w = np.broadcast_to(p.asnumpy(), (TASKS,) + p.shape).astype(np.float32)
        scale = 0.5 * (w.std() if w.std() > 0 else 1.0)
        weights.append((w + rng.normal(0.0, scale, w.shape)).astype(np.float32))
    return weights


def test_output_shape(learner, forward, images, task_weights):
    logits = forward(ms.Tensor(images), *(ms.Tensor(w) for w in task_weights))
    assert logits.shape == (TASKS, NUM, N_WAY)
    assert np.all(np.isfinite(logits.asnumpy()))
    # construct runs the meta-parameters on every task
    assert learner(ms.Tensor(images)).shape == (TASKS, NUM, N_WAY)


def test_per_task_broadcasts_meta_parameters(learner):
    copies = learner.per_task(4)
    assert len(copies) == len(learner.weights) == 3 * BLOCKS + 2
    for c, p in zip(copies, learner.weights):
        assert c.shape == (4,) + p.shape
        np.testing.assert_array_equal(c.asnumpy(), np.broadcast_to(p.asnumpy(), c.shape))


def test_kaiming_normal_initialisation():
    net = Learner(5, num_filters=64, num_blocks=4, seed=0)
    params = {p.name: p.asnumpy() for p in net.weights}
    assert len(params) == 14
    assert not any(name.startswith("conv") and name.endswith(".bias") for name in params)
    big = params["conv2.weight"]  # 64 x 64 x 3 x 3: 36864 draws
    assert big.shape == (64, 64, 3, 3)
    np.testing.assert_allclose(big.std(), np.sqrt(2.0 / (64 * 9)), rtol=0.03)
    assert abs(big.mean()) < 0.05 * big.std()
    first = params["conv0.weight"]
    np.testing.assert_allclose(first.std(), np.sqrt(2.0 / 9), rtol=0.1)
    fc = params["fc.weight"]
    assert fc.shape == (5, 64)
    np.testing.assert_allclose(fc.std(), np.sqrt(2.0 / 64), rtol=0.15)
    for block in range(4):
        np.testing.assert_array_equal(params[f"bn{block}.gamma"], 1.0)
        np.testing.assert_array_equal(params[f"bn{block}.beta"], 0.0)
    np.testing.assert_array_equal(params["fc.bias"], 0.0)
    assert all(p.dtype == np.float32 for p in params.values())


def test_seed_determines_weights():
    a, b, c = (Learner(5, 8, 2, seed=s) for s in (7, 7, 8))
    for pa, pb, pc in zip(a.weights, b.weights, c.weights):
        np.testing.assert_array_equal(pa.asnumpy(), pb.asnumpy())
        if "weight" in pa.name:
            assert not np.allclose(pa.asnumpy(), pc.asnumpy())


def _reference_forward(x, weights):
    """One task at a time: a plain conv (groups=1) on that task's own weights, batch norm over the task's
    images from elementary NumPy ops, ReLU, spatial mean, dense layer."""
    out = []
    for t in range(x.shape[0]):
        h = x[t].astype(np.float64)
        for block in range(BLOCKS):
            conv_w, gamma, beta = (w[t] for w in weights[PARAMS_PER_BLOCK * block: PARAMS_PER_BLOCK * (block + 1)])
            h = ops.conv2d(ms.Tensor(h.astype(np.float32)), ms.Tensor(conv_w), stride=2, pad_mode="same").asnumpy()
            h = h.astype(np.float64)
            mean = h.mean(axis=(0, 2, 3), keepdims=True)
            var = ((h - mean) ** 2).mean(axis=(0, 2, 3), keepdims=True)
            h = (h - mean) / np.sqrt(var + BN_EPS) * gamma[None, :, None, None] + beta[None, :, None, None]
            h = np.maximum(h, 0.0)
        features = h.mean(axis=(2, 3))
        out.append(features @ weights[-2][t].T.astype(np.float64) + weights[-1][t])
    return np.stack(out)


def test_batched_forward_equals_per_task_reference(forward, images, task_weights):
    got = forward(ms.Tensor(images), *(ms.Tensor(w) for w in task_weights)).asnumpy()
    expected = _reference_forward(images, task_weights)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    # The tasks really have different weights: running task 0's weights everywhere changes the others.
    same = [np.broadcast_to(w[:1], w.shape).copy() for w in task_weights]
    got_same = forward(ms.Tensor(images), *(ms.Tensor(w) for w in same)).asnumpy()
    np.testing.assert_allclose(got_same[0], got[0], rtol=1e-4, atol=1e-4)
    assert np.abs(got_same[1:] - got[1:]).max() > 1e-2


def test_batch_norm_statistics_are_per_task(forward, images, task_weights):
    weights = [ms.Tensor(w) for w in task_weights]
    base = forward(ms.Tensor(images), *weights).asnumpy()
    shifted = images.copy()
    shifted[0] += 3.0  # brighter images in task 0 only
    replaced = images.copy()
    replaced[1] = np.random.default_rng(5).random(replaced[1].shape) * 10.0  # task 1: other images entirely
    got_shifted = forward(ms.Tensor(shifted), *weights).asnumpy()
    got_replaced = forward(ms.Tensor(replaced), *weights).asnumpy()
    np.testing.assert_allclose(got_shifted[1:], base[1:], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got_replaced[[0, 2]], base[[0, 2]], rtol=1e-5, atol=1e-5)
    assert np.abs(got_replaced[1] - base[1]).max() > 1e-2


class GradientNormGradient(nn.Cell):
    """d/dw |dL/dw|^2 = 2 H (dL/dw), with dL/dw the inner loop's support gradient: a Hessian-vector
    product, the second derivative MAML's meta-gradient needs."""

    def __init__(self, learner):
        super().__init__()
        self.maml = MAML(learner, update_lr=0.4)  # only its support gradient is used
        self.grad_of_norm = ms.grad(self.squared_norm, grad_position=self.maml.weight_positions)

    def squared_norm(self, x, y, step, *weights):
        total = 0.0
        for g in self.maml.support_grad(x, y, step, *weights):
            total = total + ops.square(g).sum()
        return total

    def construct(self, x, y, *weights):
        return self.grad_of_norm(x, y, 0, *weights)


def test_fused_batch_norm_second_derivative_equals_elementary_ops(images, task_weights):
    """Second-order MAML differentiates through MindSpore's fused batch-norm gradient (BatchNormGradGrad):
    its Hessian-vector products must be those of batch norm written from reductions (bn_impl elementary)."""
    labels = ms.Tensor(np.random.default_rng(2).integers(0, N_WAY, (TASKS, NUM)).astype(np.int32))
    weights = [ms.Tensor(w) for w in task_weights]
    fused = GradientNormGradient(Learner(N_WAY, num_filters=FILTERS, num_blocks=BLOCKS))(ms.Tensor(images), labels, *weights)
    elementary = GradientNormGradient(Learner(N_WAY, num_filters=FILTERS, num_blocks=BLOCKS, bn_impl="elementary"))(
        ms.Tensor(images), labels, *weights)
    for got, expected in zip(fused, elementary):
        got, expected = got.asnumpy(), expected.asnumpy()
        assert np.abs(expected).max() > 1e-3
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())
