"""The meta learning-rate schedule: computed from the step (no table as long as the run), the step decay
meta_lr * gamma ** (step // lr_decay_steps), and MAML++'s cosine from meta_lr to min_meta_lr."""
import numpy as np
import pytest
import mindspore as ms

from src.model_utils.config import load_config
from src.lr_schedule import MetaLearningRate
from src.meta_optimizer import MetaOptimizer


pytestmark = pytest.mark.usefixtures("graph_mode_cpu")


def _rates(cfg, steps):
    schedule = MetaLearningRate(cfg)
    return np.array([schedule(ms.Tensor(step, ms.int32)).asnumpy() for step in steps])


@pytest.mark.parametrize("meta_lr, gamma, decay_steps", [(0.01, 0.5, 3), (0.001, 0.9, 2), (0.003, 0.7, 1), (0.001, 1.0, 5)])
def test_step_decay_is_exact_in_float32(meta_lr, gamma, decay_steps):
    """The step decay gives meta_lr * gamma ** (step // lr_decay_steps) in float32 bit for bit, so runs with a
    step schedule keep their exact learning rates."""
    meta_steps = 40
    cfg = load_config(["--meta_lr", str(meta_lr), "--lr_scheduler_gamma", str(gamma), "--lr_decay_steps",
                       str(decay_steps), "--meta_steps", str(meta_steps)])
    expected = np.array([meta_lr * gamma ** (step // decay_steps) for step in range(meta_steps)], np.float32)
    np.testing.assert_array_equal(_rates(cfg, range(meta_steps)), expected)


def test_cosine_goes_from_meta_lr_to_min_meta_lr():
    cfg = load_config(["--meta_lr_schedule", "cosine", "--meta_lr", "0.001", "--min_meta_lr", "0.00001",
                       "--meta_steps", "101"])
    rates = _rates(cfg, range(101))
    assert rates[0] == np.float32(0.001) and rates[-1] == np.float32(0.00001)
    assert rates[50] == pytest.approx((0.001 + 0.00001) / 2, rel=1e-6)
    assert rates[25] == pytest.approx(0.00001 + 0.00099 * (1 + np.cos(np.pi / 4)) / 2, rel=1e-6)
    assert np.all(np.diff(rates) < 0)


def test_schedule_memory_does_not_grow_with_meta_steps():
    """A run of the longest allowed length builds at once: neither the schedule nor the optimizer holds a
    tensor with an entry per step."""
    for schedule in ("step", "cosine"):
        cfg = load_config(["--meta_steps", str(10 ** 7), "--meta_lr_schedule", schedule, "--lr_decay_steps", "1000"])
        lr = MetaLearningRate(cfg)
        assert not list(lr.get_parameters())
        optimizer = MetaOptimizer(cfg).optimizer
        assert max(param.size for param in optimizer.get_parameters()) < cfg.meta_steps
        assert 0 < lr(ms.Tensor(2 ** 31 - 1, ms.int32)).asnumpy() <= np.float32(cfg.meta_lr)


def test_progress_log_value_is_the_float64_rate():
    cfg = load_config(["--meta_lr", "0.002", "--lr_scheduler_gamma", "0.5", "--lr_decay_steps", "2", "--meta_steps", "4"])
    lr = MetaLearningRate(cfg)
    assert [float(lr.at(ms.Tensor(step, ms.int32)).asnumpy()) for step in range(4)] == [0.002, 0.002, 0.001, 0.001]


@pytest.mark.parametrize("schedule", ["step", "cosine"])
def test_device_schedule_is_float32_and_within_a_few_ulps_of_the_cpu_rates(schedule):
    """GPU and Ascend compute the rate in float32 (no float64 in their graphs); CPU keeps its float64 numbers."""
    argv = ["--meta_lr_schedule", schedule, "--meta_lr", "0.003", "--min_meta_lr", "0.00001", "--meta_steps", "1001",
            "--lr_scheduler_gamma", "0.7", "--lr_decay_steps", "100"]
    steps = range(0, 1001, 7)
    cpu = _rates(load_config(argv), steps)
    device = MetaLearningRate(load_config(argv + ["--device_target", "GPU"]))
    assert device.dtype == ms.float32 and device.at(ms.Tensor(5, ms.int32)).dtype == ms.float32
    assert MetaLearningRate(load_config(argv)).at(ms.Tensor(5, ms.int32)).dtype == ms.float64
    rates = np.array([device(ms.Tensor(step, ms.int32)).asnumpy() for step in steps])
    np.testing.assert_allclose(rates, cpu, rtol=1e-5, atol=0)
