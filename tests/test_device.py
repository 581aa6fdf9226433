"""Device plumbing: setup_device hands the config to MindSpore (recorded, no fake hardware needed)."""
import os

import mindspore as ms
import pytest

from src.model_utils.config import load_config
from src.model_utils.device import setup_device
from src.model_utils.errors import UserError


def _usable(target):
    return (ms.device_context.gpu if target == "GPU" else ms.device_context.ascend).is_available()


@pytest.mark.parametrize("target, reason", [("GPU", "libmindspore_gpu.so."), ("Ascend", "libmindspore_ascend.so")])
def test_missing_backend_is_one_line_with_mindsporess_reason(target, reason, capfd):
    """The loader's own message (a CUDA or CANN library it could not open) is part of the line, and
    MindSpore's several lines of warnings are not printed."""
    if _usable(target):
        pytest.skip(f"this machine runs {target}")
    cfg = load_config(["--device_target", target])
    with pytest.raises(UserError) as err:
        setup_device(cfg)
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"device_target {target} is not available")
    assert reason in message and ("cannot open shared object file" in message or "no plugin" in message), message
    assert f"install the MindSpore build for {target}" in message and "--device_target CPU" in message
    assert capfd.readouterr().err == ""


def _all_usable(monkeypatch):
    for module in (ms.device_context.gpu, ms.device_context.ascend):
        monkeypatch.setattr(module, "is_available", lambda: True)


@pytest.mark.parametrize("target, allow, expected", [
    ("GPU", False, {"gpu.conv": False, "gpu.matmul": False}), ("GPU", True, {"gpu.conv": True, "gpu.matmul": True}),
    ("Ascend", False, {"ascend.conv": False, "ascend.matmul": False}), ("CPU", False, {})])
def test_full_float32_on_gpu_and_ascend_unless_allowed(monkeypatch, target, allow, expected):
    """TF32 (GPU) and HF32 (Ascend) are switched off through MindSpore's documented op_precision options."""
    calls = {}
    _all_usable(monkeypatch)
    monkeypatch.setattr(ms, "set_device", lambda *args: None)
    monkeypatch.setattr(ms, "set_context", lambda **kwargs: None)
    precision = {"gpu": ms.device_context.gpu.op_precision, "ascend": ms.device_context.ascend.op_precision}
    for name, module in precision.items():
        suffix = "tf32" if name == "gpu" else "hf32"
        for kind in ("conv", "matmul"):
            monkeypatch.setattr(module, f"{kind}_allow_{suffix}",
                                lambda value, key=f"{name}.{kind}": calls.setdefault(key, value))
    setup_device(load_config(["--device_target", target, "--allow_tf32", str(allow).lower()]))
    assert calls == expected


@pytest.mark.parametrize("target, device_id, mode, expected_device, expected_mode", [
    ("GPU", 3, "GRAPH", ("GPU", 3), ms.GRAPH_MODE),
    ("Ascend", 1, "PYNATIVE", ("Ascend", 1), ms.PYNATIVE_MODE),
    ("CPU", 2, "GRAPH", ("CPU", None), ms.GRAPH_MODE),
])
def test_config_reaches_mindspore(monkeypatch, target, device_id, mode, expected_device, expected_mode):
    calls = {}
    _all_usable(monkeypatch)
    monkeypatch.setattr("src.model_utils.device.set_precision", lambda cfg: None)
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
    _all_usable(monkeypatch)
    monkeypatch.setattr("src.model_utils.device.set_precision", lambda cfg: None)
    monkeypatch.setattr(ms, "set_device", lambda *args: None)
    monkeypatch.setattr(ms.device_context.cpu.op_tuning, "threads_num", calls.append)
    setup_device(load_config(["--device_target", target, "--cpu_threads", str(cpu_threads)]))
    assert calls == expected
