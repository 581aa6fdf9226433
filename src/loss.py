"""Cross-entropy built from elementary ops, so MindSpore can differentiate it twice.

`ops.cross_entropy` and `ops.log_softmax` have no second derivative in MindSpore (their grad
kernels GatherDGradV2 and LogSoftmaxGrad are not differentiable), yet second-order MAML
differentiates the inner-loop gradient of the loss. Here the loss is one-hot, exp, log and sum,
with the max shift (for numerical stability) under stop_gradient: subtracting any constant
leaves log-softmax unchanged, so the shift need not carry a gradient.
"""
import mindspore as ms
from mindspore import ops


def log_softmax(logits):
    """Numerically stable log-softmax over the last axis, twice differentiable."""
    shifted = logits - ops.stop_gradient(logits.max(axis=-1, keepdims=True))
    return shifted - ops.log(ops.exp(shifted).sum(axis=-1, keepdims=True))


def cross_entropy(logits, labels):
    """Mean cross-entropy over the second-to-last axis: one loss per task for (tasks, N, classes) logits."""
    one_hot = ops.one_hot(labels, logits.shape[-1], ms.Tensor(1.0, logits.dtype), ms.Tensor(0.0, logits.dtype))
    return -(one_hot * log_softmax(logits)).sum(axis=-1).mean(axis=-1)


def accuracy(logits, labels):
    """Fraction of correct predictions, one value per task."""
    return (logits.argmax(axis=-1) == labels).astype(ms.float32).mean(axis=-1)
