"""MAML's inner and outer loops: exactly `update_step` inner steps, a meta-gradient that is the true
(second-order) derivative of the post-adaptation query loss, and a short real training run."""
import numpy as np
import pytest
import mindspore as ms
from mindspore import nn

from src.learner import Learner
from src.loss import accuracy, cross_entropy
from src.maml import MAML, AdaptAndScore, MetaGradient, MetaTrainStep
from src.multi_step_loss import step_loss_weights

# Small but non-trivial: 2 tasks, 3-way 1-shot, 2 queries per class, 2 conv blocks of 8 filters.
TASKS, N_WAY, K_SPT, K_QRY, IMGSZ, FILTERS, BLOCKS = 2, 3, 1, 2, 12, 8, 2
UPDATE_LR, UPDATE_STEP = 0.4, 2


pytestmark = pytest.mark.usefixtures("graph_mode_cpu")


def _labels(k):
    return np.tile(np.repeat(np.arange(N_WAY, dtype=np.int32), k), (TASKS, 1))


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(0)
    x_spt = rng.random((TASKS, N_WAY * K_SPT, 1, IMGSZ, IMGSZ)).astype(np.float32)
    x_qry = rng.random((TASKS, N_WAY * K_QRY, 1, IMGSZ, IMGSZ)).astype(np.float32)
    return x_spt, _labels(K_SPT), x_qry, _labels(K_QRY)


def _tensors(arrays):
    return [ms.Tensor(a) for a in arrays]


@pytest.fixture(scope="module")
def maml():
    return MAML(Learner(N_WAY, FILTERS, BLOCKS, seed=0), UPDATE_LR)


@pytest.fixture(scope="module")
def theta(maml):
    return [p.asnumpy().copy() for p in maml.learner.weights]


def _set_params(learner, arrays):
    """Set the meta-parameters: the weights, then the learned inner learning rates if any."""
    for p, a in zip(learner.trainable_params(), arrays):
        p.set_data(ms.Tensor(np.asarray(a, np.float32)))


@pytest.fixture
def restore_params(maml, theta):
    yield
    _set_params(maml.learner, theta)


# ---------------------------------------------------------------- an independent per-task reference

class TaskLossAndGrad(nn.Cell):
    """Loss of ONE task (leading task axis of size 1) and its gradient with respect to that task's weights,
    written independently of MAML: mindspore.grad of cross_entropy(learner.forward(...))."""

    def __init__(self, learner):
        super().__init__()
        self.learner = learner
        num = len(learner.weights)
        self.grad = ms.value_and_grad(self.loss, grad_position=tuple(range(2, 2 + num)))

    def loss(self, x, y, *weights):
        return cross_entropy(self.learner.forward(x, weights), y).sum()

    def construct(self, x, y, *weights):
        return self.grad(x, y, *weights)


@pytest.fixture(scope="module")
def task_grad(maml):
    return TaskLossAndGrad(maml.learner)


def _loss_grad(task_grad, x, y, weights):
    """Per-task losses (T,) and gradients (list of (T, ...)) by running each task on its own."""
    losses, grads = [], []
    for t in range(x.shape[0]):
        loss, g = task_grad(ms.Tensor(x[t:t + 1]), ms.Tensor(y[t:t + 1]), *(ms.Tensor(w[t:t + 1]) for w in weights))
        losses.append(float(loss))
        grads.append([gi.asnumpy()[0] for gi in g])
    return np.array(losses), [np.stack(parts) for parts in zip(*grads)]


def _manual_sgd(task_grad, theta, x_spt, y_spt, steps):
    """`steps` plain SGD steps per task from the meta-parameters, in NumPy."""
    weights = [np.broadcast_to(w, (TASKS,) + w.shape).astype(np.float32) for w in theta]
    for _ in range(steps):
        _, grads = _loss_grad(task_grad, x_spt, y_spt, weights)
        weights = [(w - np.float32(UPDATE_LR) * g).astype(np.float32) for w, g in zip(weights, grads)]
    return weights


def _flat(arrays):
    return np.concatenate([np.asarray(a, np.float64).ravel() for a in arrays])


def _unflat(vec, like):
    out, offset = [], 0
    for a in like:
        out.append(vec[offset: offset + a.size].reshape(a.shape))
        offset += a.size
    return out


# ---------------------------------------------------------------- the meta-gradients under test

@pytest.fixture(scope="module")
def meta_grads(maml, batch, theta):
    """Second- and first-order MetaGradient cells with UPDATE_STEP inner steps, and their output at theta."""
    second = MetaGradient(maml, UPDATE_STEP, first_order=False)
    first = MetaGradient(maml, UPDATE_STEP, first_order=True)
    _set_params(maml.learner, theta)
    (loss2, acc2), g2 = second(*_tensors(batch))
    (loss1, acc1), g1 = first(*_tensors(batch))
    return {"second": second, "first": first, "loss2": float(loss2), "loss1": float(loss1),
            "acc2": float(acc2), "acc1": float(acc1),
            "g2": _flat([g.asnumpy() for g in g2]), "g1": _flat([g.asnumpy() for g in g1])}


def _slope(f, h=2e-3, num=41):
    """d f(t) / dt at t = 0 by least squares over a grid of [-h, h], robust to jumps.

    With ReLU, the inner-loop gradient jumps where a pre-activation crosses zero (ReLU'' is a Dirac
    delta), so the post-adaptation loss is piecewise smooth with small jumps: a plain central difference
    across one is meaningless. The jumps show up as outliers among consecutive differences; they split
    the grid into segments, and one common slope (with an intercept per segment) is fitted. float32
    rounding of the loss averages out over the grid.
    """
    ts = np.linspace(-h, h, num)
    values = np.array([f(t) for t in ts], np.float64)
    steps = np.diff(values)
    med = np.median(steps)
    spread = np.median(np.abs(steps - med))
    ulp = np.spacing(np.float32(np.abs(values).max()))
    jumps = np.abs(steps - med) > max(8 * spread, 4 * ulp)
    segment = np.concatenate([[0], np.cumsum(jumps)])
    design = np.zeros((num, 2 + segment.max()))
    design[:, 0] = ts
    design[np.arange(num), 1 + segment] = 1.0
    coef = np.linalg.lstsq(design, values, rcond=None)[0]
    return coef[0], int(jumps.sum())


def _finite_differences(maml, batch, theta, cell, directions, h=2e-3):
    """Directional derivatives of the loss `cell` reports, at the meta-parameters theta (grid half-width h)."""
    learner = maml.learner
    base = _flat(theta)
    fds = []
    for d in directions:
        def loss_at(t):
            _set_params(learner, _unflat(base + t * d, theta))
            (loss, _), _ = cell(*_tensors(batch))
            return float(loss)
        fds.append(_slope(loss_at, h)[0])
    _set_params(learner, theta)
    return np.array(fds)


def _relative_error(fds, grad, directions):
    return np.linalg.norm(fds - np.array([grad @ d for d in directions])) / np.linalg.norm(fds)


def test_second_order_meta_gradient_matches_finite_differences(maml, batch, theta, meta_grads, restore_params):
    g2, g1 = meta_grads["g2"], meta_grads["g1"]
    rng = np.random.default_rng(42)
    directions = [rng.standard_normal(g2.size) for _ in range(4)]
    directions.append(g2 - g1)  # where the two orders disagree most (zero if 2nd order were really 1st)
    directions = [d / np.linalg.norm(d) for d in directions if np.linalg.norm(d) > 0]
    fds = _finite_differences(maml, batch, theta, meta_grads["second"], directions)
    err2, err1 = _relative_error(fds, g2, directions), _relative_error(fds, g1, directions)
    err2_rand, err1_rand = _relative_error(fds[:4], g2, directions[:4]), _relative_error(fds[:4], g1, directions[:4])
    print(f"FD directional derivatives {np.round(fds, 5)}; relative error second order {err2:.4f} "
          f"(random directions only {err2_rand:.4f}), first order {err1:.4f} ({err1_rand:.4f})")
    assert err2 < 0.05 and err2_rand < 0.05
    # The test can tell the two apart: a first-order gradient passed off as second-order fails it.
    assert err1 > 0.1 and err1 > 5 * err2
    assert err1_rand > 0.08 and err1_rand > 5 * err2_rand
    # The loss the FD probes is the one both cells report (same forward, different gradients).
    assert meta_grads["loss1"] == pytest.approx(meta_grads["loss2"], rel=1e-6)


def test_first_order_differs_measurably_from_second_order(meta_grads):
    g2, g1 = meta_grads["g2"], meta_grads["g1"]
    assert np.all(np.isfinite(g2)) and np.all(np.isfinite(g1))
    assert np.linalg.norm(g2) > 1e-3
    assert np.linalg.norm(g2 - g1) / np.linalg.norm(g2) > 0.1


def test_first_order_is_mean_query_gradient_at_adapted_weights(task_grad, batch, theta, meta_grads):
    x_spt, y_spt, x_qry, y_qry = batch
    fast = _manual_sgd(task_grad, theta, x_spt, y_spt, UPDATE_STEP)
    _, grads = _loss_grad(task_grad, x_qry, y_qry, fast)
    expected = _flat([g.mean(axis=0) for g in grads])
    np.testing.assert_allclose(meta_grads["g1"], expected, rtol=1e-3, atol=1e-5 * np.abs(expected).max())


def test_meta_gradient_loss_is_query_loss_after_exactly_update_step_steps(task_grad, batch, theta, meta_grads):
    x_spt, y_spt, x_qry, y_qry = batch
    losses = {}
    for steps in (UPDATE_STEP - 1, UPDATE_STEP, UPDATE_STEP + 1):
        fast = _manual_sgd(task_grad, theta, x_spt, y_spt, steps)
        losses[steps] = _loss_grad(task_grad, x_qry, y_qry, fast)[0].mean()
    for key in ("loss2", "loss1"):
        assert meta_grads[key] == pytest.approx(losses[UPDATE_STEP], rel=1e-4, abs=1e-5)
        # One step more or fewer would be detected: those losses are clearly different.
        for other in (UPDATE_STEP - 1, UPDATE_STEP + 1):
            assert abs(meta_grads[key] - losses[other]) > 20 * 1e-4 * losses[UPDATE_STEP]


class Adapt(nn.Cell):
    def __init__(self, maml, steps, second_order):
        super().__init__()
        self.maml = maml
        self.steps = steps
        self.second_order = second_order

    def construct(self, x_spt, y_spt, *weights):
        return self.maml.adapt(weights, x_spt, y_spt, self.steps, self.second_order)


@pytest.mark.parametrize("second_order", [False, True])
def test_adapt_takes_exactly_k_sgd_steps(maml, task_grad, batch, theta, second_order):
    x_spt, y_spt, _, _ = batch
    _set_params(maml.learner, theta)
    start = [np.broadcast_to(w, (TASKS,) + w.shape).astype(np.float32) for w in theta]
    got = Adapt(maml, UPDATE_STEP, second_order)(ms.Tensor(x_spt), ms.Tensor(y_spt), *_tensors(start))
    got = _flat([g.asnumpy() for g in got])
    expected = _flat(_manual_sgd(task_grad, theta, x_spt, y_spt, UPDATE_STEP))
    scale = np.abs(expected).max()
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-5 * scale)
    one_more = _flat(_manual_sgd(task_grad, theta, x_spt, y_spt, UPDATE_STEP + 1))
    assert np.abs(one_more - expected).max() > 100 * 1e-5 * scale


def test_update_step_zero_is_plain_supervised_query_gradient(maml, task_grad, batch, theta):
    _set_params(maml.learner, theta)
    x_spt, y_spt, x_qry, y_qry = batch
    (loss2, _), g2 = MetaGradient(maml, 0, first_order=False)(*_tensors(batch))
    (loss1, _), g1 = MetaGradient(maml, 0, first_order=True)(*_tensors(batch))
    start = [np.broadcast_to(w, (TASKS,) + w.shape) for w in theta]
    losses, grads = _loss_grad(task_grad, x_qry, y_qry, start)
    expected = _flat([g.mean(axis=0) for g in grads])  # d/dtheta of the mean over tasks
    g2, g1 = _flat([g.asnumpy() for g in g2]), _flat([g.asnumpy() for g in g1])
    atol = 1e-5 * np.abs(expected).max()
    np.testing.assert_allclose(g2, expected, rtol=1e-3, atol=atol)
    np.testing.assert_allclose(g1, expected, rtol=1e-3, atol=atol)
    np.testing.assert_allclose(g1, g2, rtol=1e-4, atol=atol)
    assert float(loss2) == pytest.approx(losses.mean(), rel=1e-5)
    assert float(loss1) == pytest.approx(losses.mean(), rel=1e-5)


def test_adapt_and_score_scores_after_each_inner_step(maml, task_grad, batch, theta):
    _set_params(maml.learner, theta)
    x_spt, y_spt, x_qry, y_qry = batch
    losses, accs = AdaptAndScore(maml, UPDATE_STEP, every_step=True)(*_tensors(batch))
    assert losses.shape == accs.shape == (UPDATE_STEP + 1, TASKS)
    for steps in range(UPDATE_STEP + 1):
        fast = _manual_sgd(task_grad, theta, x_spt, y_spt, steps)
        np.testing.assert_allclose(losses[steps], _loss_grad(task_grad, x_qry, y_qry, fast)[0], rtol=1e-4)
    assert np.all((accs >= 0) & (accs <= 1))
    last_losses, last_accs = AdaptAndScore(maml, UPDATE_STEP)(*_tensors(batch))
    assert last_losses.shape == (1, TASKS)
    np.testing.assert_allclose(last_losses[0], losses[-1], rtol=1e-6)
    np.testing.assert_array_equal(last_accs[0], accs[-1])


# ---------------------------------------------------------------- end to end on real Omniglot

@pytest.mark.slow
def test_short_meta_training_beats_untrained_model_on_meta_test_tasks(omniglot_npy_dir):
    """5-way 1-shot, 80 meta-steps of second-order MAML: accuracy on fixed meta-test tasks rises far above
    the untrained network's, fine-tuned for 3 steps alike (chance is 0.2)."""
    from src.data.npy_cache import load_omniglot
    from src.data.splits import split_class_ids
    from src.data.episode_sampler import EpisodeSampler, fixed_task_batches

    data = load_omniglot(omniglot_npy_dir)
    splits = split_class_ids(data.classes, "finn")
    n_way, k_spt, k_qry = 5, 1, 5
    ms.set_seed(1)
    maml = MAML(Learner(n_way, 32, 4, seed=1), 0.4)
    scorer = AdaptAndScore(maml, 3, every_step=True)

    def evaluate():
        accs = []
        for part in fixed_task_batches(data.images, splits["test"], n_way, k_spt, k_qry, 60, 20, True, 0):
            accs.append(scorer(*_tensors(part))[1])
        return np.concatenate(accs, axis=1).mean(axis=1)  # accuracy after 0..3 inner steps

    threshold = 0.62
    untrained = evaluate()
    optimizer = nn.Adam(maml.learner.trainable_params(), learning_rate=0.005)
    train_step = MetaTrainStep(maml, optimizer, update_step=1, first_order=False)
    sampler = EpisodeSampler(data.images, splits["train"], n_way, k_spt, k_qry, 8, True, 1)
    for _ in range(80):
        loss, _ = train_step(*_tensors(sampler.next_batch()))
        assert np.isfinite(float(loss))
    trained = evaluate()
    print(f"meta-test accuracy after 0..3 inner steps: untrained {np.round(untrained, 3)}, "
          f"trained {np.round(trained, 3)}")
    assert untrained[-1] < threshold - 0.07
    assert trained[-1] > threshold
    assert trained[-1] - untrained[-1] > 0.15


def test_calling_maml_adapts_then_predicts(maml, batch):
    """maml(x_spt, y_spt, x_qry, steps), compiled in graph mode, is adapt followed by forward."""
    x_spt, y_spt, x_qry, _ = _tensors(batch)
    compiled = maml(x_spt, y_spt, x_qry, 2).asnumpy()
    fast = maml.adapt(maml.learner.per_task(TASKS), x_spt, y_spt, 2, False)
    eager = maml.learner.forward(x_qry, fast).asnumpy()
    unadapted = maml.learner.forward(x_qry, maml.learner.per_task(TASKS)).asnumpy()
    assert compiled.shape == (TASKS, N_WAY * K_QRY, N_WAY)
    np.testing.assert_allclose(compiled, eager, rtol=1e-5, atol=1e-5)
    assert np.abs(compiled - unadapted).max() > 1e-3


def test_adapt_and_score_predicts_what_maml_predicts(maml, batch):
    """predict.py's path (one compiled inner step, called `steps` times) equals the unrolled MAML call."""
    x_spt, y_spt, x_qry, _ = _tensors(batch)
    stepwise = AdaptAndScore(maml, 2).predict(x_spt, y_spt, x_qry).asnumpy()
    np.testing.assert_allclose(stepwise, maml(x_spt, y_spt, x_qry, 2).asnumpy(), rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- MAML++ options

class PlainMetaGradient(nn.Cell):
    """MAML's meta-gradient written without any MAML++ option (no step weights, learned rates or per-step
    batch norm): with every option off, MetaGradient must give exactly this, bit for bit."""

    def __init__(self, learner, update_step, first_order):
        super().__init__()
        self.learner = learner
        self.update_step = update_step
        self.first_order = first_order
        positions = tuple(range(2, 2 + len(learner.weights)))
        self.support_grad = ms.grad(self.support_loss, grad_position=positions)
        self.meta_grad = ms.value_and_grad(self.meta_loss, None, learner.weights, has_aux=True)
        self.fast_weight_grad = ms.value_and_grad(self.query_loss, grad_position=positions, has_aux=True)

    def support_loss(self, x, y, *weights):
        return cross_entropy(self.learner.forward(x, weights), y).sum()

    def adapt(self, weights, x_spt, y_spt, second_order):
        for _ in range(self.update_step):
            grads = self.support_grad(x_spt, y_spt, *weights)
            if not second_order:
                grads = tuple([ms.ops.stop_gradient(g) for g in grads])
            weights = tuple([w - UPDATE_LR * g for w, g in zip(weights, grads)])
        return weights

    def query_loss(self, x_qry, y_qry, *weights):
        logits = self.learner.forward(x_qry, weights)
        return cross_entropy(logits, y_qry).mean(), accuracy(logits, y_qry).mean()

    def meta_loss(self, x_spt, y_spt, x_qry, y_qry):
        weights = self.adapt(self.learner.per_task(x_spt.shape[0]), x_spt, y_spt, True)
        return self.query_loss(x_qry, y_qry, *weights)

    def construct(self, x_spt, y_spt, x_qry, y_qry):
        if self.first_order:
            weights = self.adapt(self.learner.per_task(x_spt.shape[0]), x_spt, y_spt, False)
            (loss, acc), grads = self.fast_weight_grad(x_qry, y_qry, *weights)
            return (loss, acc), tuple([g.sum(axis=0) for g in grads])
        return self.meta_grad(x_spt, y_spt, x_qry, y_qry)


@pytest.mark.parametrize("first_order", [False, True])
def test_options_off_meta_gradient_is_plain_mamls_bit_for_bit(maml, batch, theta, first_order):
    _set_params(maml.learner, theta)
    assert not maml.learner.inner_lrs and all(maml.learner.adapted)
    (loss, acc), grads = MetaGradient(maml, UPDATE_STEP, first_order)(*_tensors(batch))
    (loss0, acc0), grads0 = PlainMetaGradient(maml.learner, UPDATE_STEP, first_order)(*_tensors(batch))
    assert float(loss) == float(loss0) and float(acc) == float(acc0)
    assert len(grads) == len(grads0) == len(theta)
    for g, g0 in zip(grads, grads0):
        assert np.abs(g0.asnumpy()).max() > 0
        np.testing.assert_array_equal(g.asnumpy(), g0.asnumpy())


def _per_step_params(learner):
    """The per-step batch-norm weights and the learned learning rates of a MAML++ learner."""
    bn = [w for w, adapted in zip(learner.weights, learner.adapted) if not adapted]
    return bn, list(learner.inner_lrs)


@pytest.fixture(scope="module")
def maml_pp():
    """MAML with learned per-step learning rates and per-step batch norm; the per-step values differ from
    step to step (as after training), so that using the wrong step's values changes the numbers."""
    learner = Learner(N_WAY, FILTERS, BLOCKS, seed=0, bn_steps=UPDATE_STEP, lr_steps=UPDATE_STEP,
                      update_lr=UPDATE_LR)
    rng = np.random.default_rng(3)
    bn, lrs = _per_step_params(learner)
    for p in bn:
        base = 1.0 if "gamma" in p.name else 0.0
        p.set_data(ms.Tensor((base + 0.3 * rng.standard_normal(p.shape)).astype(np.float32)))
    for p in lrs:
        p.set_data(ms.Tensor((UPDATE_LR * (0.5 + rng.random(p.shape))).astype(np.float32)))
    return MAML(learner, UPDATE_LR)


@pytest.fixture(scope="module")
def theta_pp(maml_pp):
    return [p.asnumpy().copy() for p in maml_pp.learner.trainable_params()]


def test_mamlpp_learner_has_per_step_meta_parameters(maml_pp):
    learner = maml_pp.learner
    bn, lrs = _per_step_params(learner)
    assert len(bn) == 2 * BLOCKS and all(p.shape == (UPDATE_STEP, FILTERS) for p in bn)
    # One vector of per-step rates for each adapted weight: the convolutions and the dense layer.
    assert len(lrs) == BLOCKS + 2 and all(p.shape == (UPDATE_STEP,) for p in lrs)
    assert [p.name for p in learner.trainable_params()] == [p.name for p in learner.weights] + [p.name for p in lrs]
    fresh = Learner(N_WAY, FILTERS, BLOCKS, seed=0, bn_steps=UPDATE_STEP, lr_steps=UPDATE_STEP, update_lr=0.1)
    np.testing.assert_array_equal(fresh.inner_lrs[0].asnumpy(), np.float32([0.1] * UPDATE_STEP))
    # The convolution and dense weights are drawn as without the options (same seed, same values).
    plain = Learner(N_WAY, FILTERS, BLOCKS, seed=0)
    for p, q, adapted in zip(fresh.weights, plain.weights, fresh.adapted):
        if adapted:
            np.testing.assert_array_equal(p.asnumpy(), q.asnumpy())


def test_mamlpp_meta_gradient_matches_finite_differences(maml_pp, batch, theta_pp):
    """Second-order meta-gradient of the multi-step loss with respect to the learned inner learning rates,
    the per-step batch-norm weights and all meta-parameters, against finite differences of that loss."""
    learner = maml_pp.learner
    _set_params(learner, theta_pp)
    step_weights = np.float32([0.3, 0.7])
    inputs = (*batch, step_weights)
    cell = MetaGradient(maml_pp, UPDATE_STEP, first_order=False)
    _, grads = cell(*_tensors(inputs))
    grad = _flat([g.asnumpy() for g in grads])
    names = [p.name for p in learner.trainable_params()]
    bn_names = {p.name for p in _per_step_params(learner)[0]}
    lr_names = {p.name for p in learner.inner_lrs}
    mask_bn = _flat([np.full(t.shape, name in bn_names, float) for name, t in zip(names, theta_pp)])
    mask_lr = _flat([np.full(t.shape, name in lr_names, float) for name, t in zip(names, theta_pp)])
    assert np.abs(grad * mask_lr).max() > 1e-3 and np.abs(grad * mask_bn).max() > 1e-3
    rng = np.random.default_rng(7)
    directions = [rng.standard_normal(grad.size) * mask for mask in (mask_lr, mask_lr, mask_bn, mask_bn, 1.0)]
    directions = [d / np.linalg.norm(d) for d in directions]
    fds = _finite_differences(maml_pp, inputs, theta_pp, cell, directions)
    err = _relative_error(fds, grad, directions)
    err_lr = _relative_error(fds[:2], grad, directions[:2])
    err_bn = _relative_error(fds[2:4], grad, directions[2:4])
    print(f"FD {np.round(fds, 5)}; relative error all {err:.4f}, learning rates {err_lr:.4f}, per-step BN {err_bn:.4f}")
    assert err < 0.05 and err_lr < 0.05 and err_bn < 0.05


def test_multi_step_loss_is_the_weighted_query_loss_of_every_step(maml_pp, batch, theta_pp):
    """The training loss with step weights is sum_k w_k * (mean query loss after k inner steps), each scored
    as validation scores it (AdaptAndScore: one compiled call per step, Tensor step numbers)."""
    _set_params(maml_pp.learner, theta_pp)
    losses, _ = AdaptAndScore(maml_pp, UPDATE_STEP, every_step=True)(*_tensors(batch))
    per_step = losses.mean(axis=1)[1:]  # after 1..UPDATE_STEP inner steps
    assert abs(per_step[0] - per_step[1]) > 1e-3
    cell = MetaGradient(maml_pp, UPDATE_STEP, first_order=False)
    for step_weights in ([0.5, 0.5], [0.2, 0.8]):
        (loss, _), _ = cell(*_tensors((*batch, np.float32(step_weights))))
        assert float(loss) == pytest.approx(float(np.dot(step_weights, per_step)), rel=1e-5)
    # Only the last step weighted: the same loss and meta-gradient as without the multi-step loss.
    (loss_last, acc_last), grads_last = cell(*_tensors((*batch, np.float32([0.0, 1.0]))))
    (loss, acc), grads = cell(*_tensors(batch))
    assert float(loss_last) == pytest.approx(float(loss), rel=1e-6) and float(acc_last) == float(acc)
    for g_last, g in zip(grads_last, grads):
        np.testing.assert_allclose(g_last.asnumpy(), g.asnumpy(), rtol=1e-4, atol=1e-6 * np.abs(g.asnumpy()).max())


def test_msl_weights_follow_maml_plus_plus_formula():
    """N = 5 inner steps annealed over 1000 meta-steps: 1/N each at the start; halfway, 0.5/N for the
    non-final steps and 1/N + 0.5 (N-1)/N for the last; near the end the floor 0.03/N and 1 - (N-1) 0.03/N;
    from 1000 on (and with MSL off) the last step alone (None: the graph without the multi-step loss)."""
    n, length = 5, 1000
    np.testing.assert_allclose(step_loss_weights(n, length, 0), [0.2] * 5, rtol=1e-6)
    np.testing.assert_allclose(step_loss_weights(n, length, 500), [0.1] * 4 + [0.6], rtol=1e-6)
    np.testing.assert_allclose(step_loss_weights(n, length, 250), [0.15] * 4 + [0.4], rtol=1e-6)
    np.testing.assert_allclose(step_loss_weights(n, length, 999), [0.006] * 4 + [0.976], rtol=1e-6)
    for step in (0, 250, 500):
        assert step_loss_weights(n, length, step).sum() == pytest.approx(1.0, rel=1e-6)
    assert step_loss_weights(n, length, 1000) is None and step_loss_weights(n, 0, 0) is None
    assert step_loss_weights(n, length, 7).dtype == np.float32


def test_fine_tuning_past_the_trained_steps_reuses_the_last_steps_values(maml_pp, batch, theta_pp):
    """update_step_test > update_step: inner steps 2, 3, ... use the learning rates and batch-norm weights of
    the last trained step (index UPDATE_STEP - 1), in validation/eval.py's stepwise path and in the compiled
    MAML call alike."""
    learner = maml_pp.learner
    theta = [t.copy() for t in theta_pp]
    names = [p.name for p in learner.trainable_params()]
    lr_names = {p.name for p in learner.inner_lrs}
    for name, t in zip(names, theta):
        if name in lr_names:
            t[1:] = 0.0  # from the second inner step on, no update
    _set_params(learner, theta)
    steps = UPDATE_STEP + 2
    losses, _ = AdaptAndScore(maml_pp, steps, every_step=True)(*_tensors(batch))
    np.testing.assert_array_equal(losses[2:], np.broadcast_to(losses[1], losses[2:].shape))
    assert np.abs(losses[1] - losses[0]).max() > 1e-3
    x_spt, y_spt, x_qry, _ = _tensors(batch)
    stepwise = AdaptAndScore(maml_pp, steps).predict(x_spt, y_spt, x_qry).asnumpy()
    np.testing.assert_allclose(stepwise, maml_pp(x_spt, y_spt, x_qry, steps).asnumpy(), rtol=1e-5, atol=1e-5)
    # The queries after 1+ steps are normalised with the last step's batch-norm weights: copying step 0's
    # into it changes them.
    bn_names = {p.name for p in _per_step_params(learner)[0]}
    for name, t in zip(names, theta):
        if name in bn_names:
            t[-1] = t[0]
    _set_params(learner, theta)
    changed, _ = AdaptAndScore(maml_pp, steps, every_step=True)(*_tensors(batch))
    np.testing.assert_allclose(changed[0], losses[0], rtol=1e-6)
    assert np.abs(changed[-1] - losses[-1]).max() > 1e-3
    _set_params(learner, theta_pp)


# ---------------------------------------------------------------- non-transductive batch norm

@pytest.fixture(scope="module")
def maml_nt(theta):
    """The same network and weights, its queries normalised with the support set's statistics."""
    maml = MAML(Learner(N_WAY, FILTERS, BLOCKS, seed=0, transductive=False), UPDATE_LR)
    _set_params(maml.learner, theta)
    return maml


def test_non_transductive_query_logits_do_not_depend_on_the_other_queries(maml, maml_nt, batch):
    """A query gets the same logits alone, among the others, and among other images: predict.py and the
    exported graph answer one image as they answer a batch. Transductive batch norm (the control) does not."""
    x_spt, y_spt, x_qry, _ = batch
    rng = np.random.default_rng(5)
    extra = rng.random(x_qry.shape).astype(np.float32)
    for model, independent in ((maml_nt, True), (maml, False)):
        scorer = AdaptAndScore(model, UPDATE_STEP)
        together = scorer.predict(*_tensors((x_spt, y_spt, x_qry))).asnumpy()
        alone = np.concatenate([scorer.predict(*_tensors((x_spt, y_spt, x_qry[:, i:i + 1]))).asnumpy()
                                for i in range(x_qry.shape[1])], axis=1)
        crowded = scorer.predict(*_tensors((x_spt, y_spt, np.concatenate((extra, x_qry), 1)))).asnumpy()
        crowded = crowded[:, extra.shape[1]:]
        if independent:
            np.testing.assert_allclose(alone, together, rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(crowded, together, rtol=1e-5, atol=1e-5)
        else:
            assert np.abs(alone - together).max() > 1e-2 and np.abs(crowded - together).max() > 1e-2


def test_non_transductive_query_normalised_with_support_statistics(maml_nt, batch):
    """Support images sent as queries get exactly the logits the support set's own forward gives them: the
    queries are normalised with the support set's statistics."""
    x_spt, _, _, _ = _tensors(batch)
    weights = maml_nt.learner.per_task(TASKS)
    as_query = maml_nt.learner.query_logits(x_spt, x_spt, weights).asnumpy()
    np.testing.assert_allclose(as_query, maml_nt.learner.forward(x_spt, weights).asnumpy(), rtol=1e-5, atol=1e-5)


def test_non_transductive_second_order_meta_gradient_matches_finite_differences(maml_nt, batch, theta):
    second = MetaGradient(maml_nt, UPDATE_STEP, first_order=False)
    first = MetaGradient(maml_nt, UPDATE_STEP, first_order=True)
    _set_params(maml_nt.learner, theta)
    g2 = _flat([g.asnumpy() for g in second(*_tensors(batch))[1]])
    g1 = _flat([g.asnumpy() for g in first(*_tensors(batch))[1]])
    rng = np.random.default_rng(7)
    directions = [rng.standard_normal(g2.size) for _ in range(4)] + [g2 - g1]
    directions = [d / np.linalg.norm(d) for d in directions]
    # Normalised with three support images, the loss curves more sharply: a narrower grid keeps the
    # finite differences' own error small.
    fds = _finite_differences(maml_nt, batch, theta, second, directions, h=5e-4)
    err2, err1 = _relative_error(fds, g2, directions), _relative_error(fds, g1, directions)
    print(f"non-transductive: relative error second order {err2:.4f}, first order {err1:.4f}")
    assert err2 < 0.05
    assert err1 > 0.1 and err1 > 5 * err2  # the negative control: first order fails the same check
