"""The loss that second-order MAML differentiates twice: values, first and second derivatives, accuracy."""
import numpy as np
import pytest
import mindspore as ms

from src.loss import accuracy, cross_entropy, log_softmax

TASKS, NUM, CLASSES = 3, 4, 5


pytestmark = pytest.mark.usefixtures("graph_mode_cpu")


def np_log_softmax(z):
    z = np.asarray(z, np.float64)
    m = z.max(axis=-1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=-1, keepdims=True))


def np_softmax(z):
    return np.exp(np_log_softmax(z))


def np_cross_entropy(z, y):
    """Per-task mean of -log p[label] (log-sum-exp reference in float64)."""
    logp = np_log_softmax(z)
    return -np.take_along_axis(logp, y[..., None].astype(np.int64), axis=-1)[..., 0].mean(axis=-1)


@pytest.fixture(scope="module")
def logits_and_labels():
    rng = np.random.default_rng(0)
    z = rng.normal(0.0, 3.0, (TASKS, NUM, CLASSES)).astype(np.float32)
    z[0, 0] = [1000.0, 0.0, -5.0, 999.0, 3.0]          # huge logits: exp would overflow without the shift
    z[0, 1] = [-1000.0, -998.0, -1001.0, -1000.0, -999.5]
    z[1, 2] = [500.0, -500.0, 0.0, 250.0, 499.0]
    y = rng.integers(0, CLASSES, (TASKS, NUM)).astype(np.int32)
    y[0, 0] = 3  # the label is not the arg-max, so the loss there is exactly 1 (= 1000 - 999)
    return z, y


def test_log_softmax_matches_numpy(logits_and_labels):
    z, _ = logits_and_labels
    got = log_softmax(ms.Tensor(z)).asnumpy()
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, np_log_softmax(z), rtol=1e-5, atol=1e-4)


def test_cross_entropy_matches_log_sum_exp_reference(logits_and_labels):
    z, y = logits_and_labels
    got = cross_entropy(ms.Tensor(z), ms.Tensor(y)).asnumpy()
    assert got.shape == (TASKS,)
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, np_cross_entropy(z, y), rtol=1e-5, atol=1e-4)
    # A single (N, C) task (no task axis) reduces to a scalar.
    single = cross_entropy(ms.Tensor(z[1]), ms.Tensor(y[1])).asnumpy()
    np.testing.assert_allclose(single, np_cross_entropy(z[1], y[1]), rtol=1e-5)


def _summed_ce(z, y):
    return cross_entropy(z, y).sum()


def test_gradient_is_softmax_minus_onehot_over_n(logits_and_labels):
    z, y = logits_and_labels
    grad = ms.grad(_summed_ce, grad_position=0)(ms.Tensor(z), ms.Tensor(y)).asnumpy()
    expected = (np_softmax(z) - np.eye(CLASSES)[y]) / NUM
    assert np.all(np.isfinite(grad))
    np.testing.assert_allclose(grad, expected, atol=1e-6)


def _hvp_objective(z, y, v):
    """<d loss / d z, v>: its gradient with respect to z is the Hessian of the loss times v."""
    g = ms.grad(_summed_ce, grad_position=0)(z, y)
    return (g * v).sum()


def test_second_derivative_matches_analytic_hessian_and_finite_differences(logits_and_labels):
    z, y = logits_and_labels
    rng = np.random.default_rng(1)
    v = rng.normal(size=z.shape).astype(np.float32)
    hvp = ms.grad(_hvp_objective, grad_position=0)(ms.Tensor(z), ms.Tensor(y), ms.Tensor(v)).asnumpy()
    assert np.all(np.isfinite(hvp))
    # Hessian of each sample's cross-entropy: (diag(p) - p p^T) / N, independent of the label.
    p = np_softmax(z)
    v64 = v.astype(np.float64)
    expected = (p * v64 - p * (p * v64).sum(axis=-1, keepdims=True)) / NUM
    np.testing.assert_allclose(hvp, expected, atol=1e-6)
    assert np.abs(expected).max() > 1e-2  # a non-trivial Hessian, not zeros on both sides

    # Finite differences of the (analytic, float64) gradient along v on moderate logits.
    zm = rng.normal(0.0, 1.0, z.shape).astype(np.float32)
    hvp_m = ms.grad(_hvp_objective, grad_position=0)(ms.Tensor(zm), ms.Tensor(y), ms.Tensor(v)).asnumpy()
    eps = 1e-4

    def grad64(x):
        return (np_softmax(x) - np.eye(CLASSES)[y]) / NUM

    fd = (grad64(zm + eps * v64) - grad64(zm - eps * v64)) / (2 * eps)
    np.testing.assert_allclose(hvp_m, fd, atol=2e-6)


def test_accuracy_counts_correct_predictions_per_task():
    z = np.array([[[3, 1, 0], [0, 2, 1], [1, 0, 5], [4, 0, 0]],
                  [[0, 0, 1], [0, 1, 0], [1, 0, 0], [0, 1, 0]]], np.float32)
    y = np.array([[0, 1, 2, 1], [0, 0, 0, 0]], np.int32)
    acc = accuracy(ms.Tensor(z), ms.Tensor(y)).asnumpy()
    np.testing.assert_allclose(acc, [0.75, 0.25])
    assert acc.dtype == np.float32
