"""Device plumbing: setup_device hands the config to MindSpore (recorded, no fake hardware needed)."""
import os

import mindspore as ms
import pytest

from src.config import load_config
from src.device import setup_device
from src.errors import UserError


@pytest.mark.skipif(ms.hal.is_available("GPU"), reason="this machine has a GPU build of MindSpore")
def test_missing_backend_is_a_clear_error():
    cfg = load_config(["--device_target", "GPU"])
    with pytest.raises(UserError) as err:
        setup_device(cfg)
    message = str(err.value)
    assert "device_target GPU is not available" in message
    assert "install the MindSpore build for GPU" in message and "--device_target CPU" in message


@pytest.mark.parametrize("target, device_id, mode, expected_device, expected_mode", [
    ("GPU", 3, "GRAPH", ("GPU", 3), ms.GRAPH_MODE),
    ("Ascend", 1, "PYNATIVE", ("Ascend", 1), ms.PYNATIVE_MODE),
    ("CPU", 2, "GRAPH", ("CPU", None), ms.GRAPH_MODE),
])
def test_config_reaches_mindspore(monkeypatch, target, device_id, mode, expected_device, expected_mode):
    calls = {}
    monkeypatch.setattr(ms.hal, "is_available", lambda name: True)
    monkeypatch.setattr(ms, "set_device", lambda *args: calls.setdefault("device", args))
    monkeypatch.setattr(ms, "set_context", lambda **kwargs: calls.setdefault("context", kwargs))
    monkeypatch.setattr(ms, "set_seed", lambda seed: calls.setdefault("seed", seed))
    # A stale DEVICE_ID from the shell must not contradict --device_id.
    monkeypatch.setenv("DEVICE_ID", "7")
    cfg = load_config(["--device_target", target, "--device_id", str(device_id), "--mode", mode, "--seed", "5"])
    setup_device(cfg)
    assert calls == {"device": expected_device, "context": {"mode": expected_mode}, "seed": 5}
    assert os.environ["DEVICE_ID"] == str(device_id)


@pytest.mark.parametrize("target, cpu_threads, expected", [("CPU", 1, [1]), ("CPU", 0, []), ("GPU", 2, [])])
def test_cpu_threads_reach_mindspore_only_on_cpu(monkeypatch, target, cpu_threads, expected):
    calls = []
    monkeypatch.setattr(ms.hal, "is_available", lambda name: True)
    monkeypatch.setattr(ms, "set_device", lambda *args: None)
    monkeypatch.setattr(ms.device_context.cpu.op_tuning, "threads_num", calls.append)
    setup_device(load_config(["--device_target", target, "--cpu_threads", str(cpu_threads)]))
    assert calls == expected
