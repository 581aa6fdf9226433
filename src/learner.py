"""Finn et al.'s Omniglot network as a functional Cell, batched over the tasks of a meta-batch.

The weights live in the Cell as Parameters (the meta-parameters), but `forward` takes them as an
explicit tuple so that the inner loop can feed adapted ("fast") weights through the same network
without assigning to Parameters. Every weight in that tuple carries a leading task axis: task t
runs with its own weights. The tasks are packed into the channel axis and each convolution is one
grouped convolution (groups = tasks), which replaces a Python loop over tasks of small
convolutions by one large kernel; batch norm then normalises each (task, channel) over its own
images, exactly as a per-task network would.

The convolutions have no bias: batch norm subtracts each channel's mean right after, which cancels
any bias exactly, while its gradient would be a costly reduction over the largest activations of
every backward pass.

Two MAML++ options (Antoniou et al., 2019) add meta-parameters with a leading axis of inner steps:
per-step batch-norm weights (`bn_steps`: gamma and beta of shape (steps, C), used by the network at
inner step i, learned in the outer loop only) and learned inner learning rates (`lr_steps`: one
vector of per-step rates per adapted weight, `inner_lrs`). Both live here, with the weights, so that
one optimizer list and one set of checkpoint names hold every meta-parameter. Inner steps past the
last trained one reuse its values (`slot`).

Batch norm's statistics come from the images being classified (`transductive`, as in MAML), or from
the support set alone (`transductive=False`, MetaBN in Bronskill et al.'s terms): queries are then
normalised with the support images' moments, so a query's logits depend only on the support set and
itself, and one image alone is classified as within a batch. The moments are then taken with
reductions (`bn_impl="elementary"`, also usable for every batch norm), which any backend can
differentiate twice; the fused kernel cannot restrict its statistics to part of its batch.

The grouped convolution has two other forms for backends whose grouped convolution is only depthwise
(Ascend): `conv_impl="per_task"`, one ordinary convolution per task, concatenated; and
`conv_impl="matmul"`, every output's 3x3 patch gathered by products with constant 0/1 matrices and
multiplied by each task's weights in one batched matrix product: matrix products only, in a graph whose
size does not grow with the task count.
All forms compute the same numbers from the same weights (src/formulation.py picks them per backend).
"""
import numpy as np
import mindspore as ms
from mindspore import nn, ops
from mindspore.ops import operations as P

from src.formulation import BN_IMPLS, CONV_IMPLS
from src.initializer import kaiming_normal

BN_EPS = 1e-5
KERNEL = 3
PARAMS_PER_BLOCK = 3  # convolution weight, batch-norm gamma and beta


class Learner(nn.Cell):
    """num_blocks x [3x3 conv stride 2 'same' -> batch norm -> ReLU] -> spatial mean -> dense to n_way."""

    def __init__(self, n_way, num_filters=64, num_blocks=4, seed=0, bn_steps=0, lr_steps=0, update_lr=0.0,
                 transductive=True, bn_impl="fused", conv_impl="grouped"):
        """bn_steps > 0: per-step batch-norm weights for that many inner steps, not adapted in the inner loop;
        lr_steps > 0: that many learned inner learning rates per adapted weight, starting at update_lr;
        transductive: queries normalised with their own batch's statistics, else with the support set's;
        bn_impl: the batch norm of a whole batch's statistics, MindSpore's fused kernel or reductions;
        conv_impl: the tasks' convolutions as one grouped convolution, one per task, or a batched matmul."""
        super().__init__()
        if bn_impl not in BN_IMPLS:
            raise ValueError(f"bn_impl must be one of {BN_IMPLS}, got {bn_impl!r}")
        if conv_impl not in CONV_IMPLS:
            raise ValueError(f"conv_impl must be one of {CONV_IMPLS}, got {conv_impl!r}")
        self.conv_impl = conv_impl
        self.num_blocks = num_blocks
        self.transductive = transductive
        self.bn_impl = bn_impl
        self.steps = max(bn_steps, lr_steps)
        rng = np.random.default_rng(seed)
        bn_shape = (bn_steps, num_filters) if bn_steps else (num_filters,)
        params = []
        in_ch = 1  # grey-scale images
        for block in range(num_blocks):
            params += [
                ms.Parameter(ms.Tensor(kaiming_normal(rng, (num_filters, in_ch, KERNEL, KERNEL))), name=f"conv{block}.weight"),
                ms.Parameter(ms.Tensor(np.ones(bn_shape, np.float32)), name=f"bn{block}.gamma"),
                ms.Parameter(ms.Tensor(np.zeros(bn_shape, np.float32)), name=f"bn{block}.beta"),
            ]
            in_ch = num_filters
        params += [
            ms.Parameter(ms.Tensor(kaiming_normal(rng, (n_way, num_filters))), name="fc.weight"),
            ms.Parameter(ms.Tensor(np.zeros(n_way, np.float32)), name="fc.bias"),
        ]
        self.weights = ms.ParameterTuple(params)
        # Which weights the inner loop adapts (all but per-step batch-norm weights) and, for each weight,
        # the index of its learned learning rates in inner_lrs (None: the fixed update_lr, or not adapted).
        self.adapted = tuple(not (bn_steps and p.name.startswith("bn")) for p in params)
        learned = [i for i, adapted in enumerate(self.adapted) if adapted and lr_steps]
        self.inner_lrs = ms.ParameterTuple([
            ms.Parameter(ms.Tensor(np.full(lr_steps, update_lr, np.float32)), name=f"inner_lr.{params[i].name}")
            for i in learned])
        self.lr_index = tuple(learned.index(i) if i in learned else None for i in range(len(params)))
        self.fused_bn = P.BatchNorm(is_training=True, epsilon=BN_EPS)

    def slot(self, step):
        """Index of the per-step values (batch-norm weights, learning rates) for inner step `step` (an int or
        a scalar Tensor): the step itself, or the last trained step for steps past it (fine-tuning longer
        than training)."""
        if isinstance(step, ms.Tensor):
            return ops.minimum(step, self.steps - 1)
        return min(step, self.steps - 1)

    def batch_norm(self, h, gamma, beta, stats=None):
        """Batch norm of h (N, channels, H, W) with the statistics of its first `stats` images (None: all).

        MindSpore's fused kernel is differentiable twice on CPU (BatchNormGrad has its own gradient,
        BatchNormGradGrad), so second-order MAML uses it there: it is faster and leaner than batch norm
        written from elementary ops (docs/performance.md). The running statistics it would update
        are throw-away zeros: MAML never uses them. The elementary form normalises with the biased
        variance, as the fused kernel does in training mode."""
        if stats is None and self.bn_impl == "fused":
            running = ops.zeros(gamma.shape, gamma.dtype)
            return self.fused_bn(h, gamma, beta, running, running + 1)[0]
        return _batch_norm_elementary(h, gamma, beta, stats)

    def query_logits(self, x_spt, x_qry, weights, step=0):
        """Logits of the query images x_qry under the fast weights: transductively (the queries' own
        statistics), or normalised with the support set's statistics, the support images passed along."""
        if self.transductive:
            return self.forward(x_qry, weights, step)
        support = x_spt.shape[1]
        return self.forward(ops.concat((x_spt, x_qry), 1), weights, step, support)[:, support:]

    def forward(self, x, weights, step=0, stats=None):
        """Logits (tasks, N, n_way) of images x (tasks, N, C, H, W) under per-task weights (tasks, ...), as the
        network is after `step` inner updates (this picks the per-step batch-norm weights, if any); batch norm
        takes the statistics of the first `stats` images of each task (None: all N)."""
        tasks, num, channels, height, width = x.shape
        # (tasks, N, C, H, W) -> (N, tasks * C, H, W): task t owns channel group t.
        h = x.transpose(1, 0, 2, 3, 4).reshape(num, tasks * channels, height, width)
        for block in range(self.num_blocks):
            conv_w, gamma, beta = weights[PARAMS_PER_BLOCK * block: PARAMS_PER_BLOCK * (block + 1)]
            h = convolution(h, conv_w, self.conv_impl)
            if gamma.ndim == 3:  # per-step weights (tasks, steps, C)
                slot = self.slot(step)
                gamma, beta = gamma[:, slot], beta[:, slot]
            h = ops.relu(self.batch_norm(h, gamma.reshape(-1), beta.reshape(-1), stats))
        features = h.mean(axis=(2, 3)).reshape(num, tasks, -1).transpose(1, 0, 2)
        fc_w, fc_b = weights[-2], weights[-1]
        return ops.bmm(features, fc_w.transpose(0, 2, 1)) + fc_b.expand_dims(1)

    def per_task(self, tasks):
        """The meta-parameters broadcast to `tasks` copies: the starting point of every task's adaptation."""
        return tuple([ops.broadcast_to(w.expand_dims(0), (tasks,) + w.shape) for w in self.weights])

    def construct(self, x):
        return self.forward(x, self.per_task(x.shape[0]))


def _batch_norm_elementary(h, gamma, beta, stats):
    """`Learner.batch_norm` from reductions, with the statistics of the first `stats` images (None: all)."""
    sample = h if stats is None else h[:stats]
    mean = sample.mean(axis=(0, 2, 3), keep_dims=True)
    centred = sample - mean  # squared as a product: the gradient of ops.square adds two more primitives
    var = (centred * centred).mean(axis=(0, 2, 3), keep_dims=True)
    scale = ops.rsqrt(var + BN_EPS) * gamma.reshape(1, -1, 1, 1)
    return (centred if stats is None else h - mean) * scale + beta.reshape(1, -1, 1, 1)


def convolution(h, conv_w, conv_impl):
    """The 3x3 stride-2 'same' convolution of h (N, tasks * C_in, H, W), task t's channel group with its
    weights conv_w[t] (tasks, C_out, C_in, 3, 3): grouped, as a batched matmul, or per task and concatenated."""
    tasks = conv_w.shape[0]
    if conv_impl == "grouped":
        return _conv(h, conv_w.reshape((-1,) + conv_w.shape[2:]), tasks)
    if conv_impl == "matmul":
        return _conv_matmul(h, conv_w)
    inputs = ops.split(h, h.shape[1] // tasks, axis=1)
    return ops.concat([_conv(inputs[t], conv_w[t], 1) for t in range(tasks)], axis=1)


def _conv(h, weight, groups):
    """3x3 stride-2 convolution with 'same' padding (the extra row and column at the bottom and right)."""
    return P.Conv2D(weight.shape[0], weight.shape[2:], pad_mode="same", stride=2, group=groups)(h, weight)


def _tap_rows(size):
    """(3 * out, size) 0/1 matrix whose row k * out + o picks the input row under kernel row k of output row o of
    the 3x3 stride-2 'same' convolution along an axis of `size` (all zeros where that row is padding)."""
    out = -(-size // 2)
    before = max(2 * (out - 1) + KERNEL - size, 0) // 2
    rows = np.zeros((KERNEL * out, size), np.float32)
    for k in range(KERNEL):
        for o in range(out):
            if 0 <= 2 * o + k - before < size:
                rows[k * out + o, 2 * o + k - before] = 1
    return rows


def _conv_matmul(h, conv_w):
    """The convolution of `convolution` from matrix products alone: constant 0/1 matrices gather each
    output pixel's 3x3 input patch (im2col, padding included), one BatchMatMul applies task t's weights
    flattened to (C_out, C_in * 9). Matrix products differentiate twice into matrix products on every backend."""
    tasks, c_out, c_in = conv_w.shape[:3]
    num, _, height, width = h.shape
    rows, cols = ms.Tensor(_tap_rows(height)), ms.Tensor(_tap_rows(width))
    out_h, out_w = rows.shape[0] // KERNEL, cols.shape[0] // KERNEL
    patches = ops.matmul(ops.matmul(rows, h), cols.T)  # (num, tasks * C_in, 3 * out_h, 3 * out_w)
    # -> (tasks, C_in * 9, num * out_h * out_w), the weights' (C_in, ky, kx) order
    patches = patches.reshape(num, tasks, c_in, KERNEL, out_h, KERNEL, out_w).transpose(1, 2, 3, 5, 0, 4, 6)
    out = ops.bmm(conv_w.reshape(tasks, c_out, -1), patches.reshape(tasks, c_in * KERNEL * KERNEL, -1))
    return out.reshape(tasks, c_out, num, out_h, out_w).transpose(2, 0, 1, 3, 4).reshape(num, tasks * c_out, out_h, out_w)
