"""Select the backend (CPU, GPU or Ascend) and execution mode from the config, and join the other
ranks when msrun started this process."""
import os
import subprocess
import sys
from pathlib import Path

import mindspore as ms

from src.model_utils import distributed
from src.model_utils.errors import UserError

PLUGINS = {"GPU": "libmindspore_gpu", "Ascend": "libmindspore_ascend"}


def _quiet(probe):
    """probe() with the process's stderr dropped: MindSpore's probe logs several lines of its own (the plugins it
    failed to load, Ascend's even when GPU is asked for)."""
    sys.stderr.flush()
    kept = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            return probe()
    finally:
        sys.stderr.flush()
        os.dup2(kept, 2)
        os.close(kept)


def load_error(target):
    """Why MindSpore could not load the backend's plugin, in one line.

    MindSpore records the loader's message for the plugins it tried. It does not try the GPU plugin when it
    finds no CUDA runtime, so for GPU without a recorded message the newest GPU plugin of this build is loaded
    in a child process, which yields the dynamic loader's reason (e.g. libcudnn.so.8 not found)."""
    try:
        from mindspore._c_expression import MSContext  # the message MindSpore's own is_available logs
        lines = [line.strip() for line in MSContext.get_instance().load_plugin_error().splitlines()]
    except (ImportError, AttributeError):  # another MindSpore version: the GPU probe below still answers
        lines = []
    relevant = [line for line in lines if PLUGINS[target] in line or (target == "Ascend" and "ascend" in line)]
    if relevant or target != "GPU":
        return "; ".join(relevant) or "this MindSpore build has no plugin for it"
    plugins = sorted(Path(ms.__file__).parent.glob(f"lib/plugin/{PLUGINS[target]}.so.*"),
                     key=lambda path: [int(part) for part in path.name.split(".so.")[1].split(".") if part.isdigit()])
    if not plugins:
        return "this MindSpore build has no GPU plugin (install the GPU build)"
    probe = subprocess.run([sys.executable, "-c", "import ctypes, sys; ctypes.CDLL(sys.argv[1])", str(plugins[-1])],
                           capture_output=True, text=True, check=False)
    reason = (probe.stderr.strip().splitlines() or ["it loads in a child process"])[-1].removeprefix("OSError: ")
    return f"{plugins[-1].name}: {reason}"


def check_available(target):
    """A backend this MindSpore build or this machine cannot run is one error line with MindSpore's reason."""
    if target == "CPU":
        return
    module = ms.device_context.gpu if target == "GPU" else ms.device_context.ascend
    if not _quiet(module.is_available):
        raise UserError(f"device_target {target} is not available here ({load_error(target)}): install the MindSpore "
                        f"build for {target} and its drivers (README, Devices), or pass --device_target CPU")


def set_precision(cfg):
    """Full float32 convolutions and matrix products on GPU and Ascend unless cfg.allow_tf32: TF32 (cuDNN's default
    for convolutions) and HF32 (CANN's) keep about 10 mantissa bits, which perturbs second-order meta-gradients."""
    allowed = bool(cfg.allow_tf32)
    if cfg.device_target == "GPU":
        ms.device_context.gpu.op_precision.conv_allow_tf32(allowed)
        ms.device_context.gpu.op_precision.matmul_allow_tf32(allowed)
    elif cfg.device_target == "Ascend":
        ms.device_context.ascend.op_precision.conv_allow_hf32(allowed)
        ms.device_context.ascend.op_precision.matmul_allow_hf32(allowed)


def setup_device(cfg):
    """Apply device_target, device_id and mode; a backend this MindSpore build lacks is a clear error.

    The launch scripts export DEVICE_ID and pass --device_id; the config value is what counts, and
    DEVICE_ID is set to it so that libraries reading the variable agree with it. Under msrun each
    rank takes the card msrun gave it (DEVICE_ID, its local rank) and joins the others
    (src.model_utils.distributed.join).
    """
    target = cfg.device_target
    check_available(target)
    mode = ms.GRAPH_MODE if cfg.mode == "GRAPH" else ms.PYNATIVE_MODE
    ms.set_context(mode=mode)
    msrun = distributed.launched_by_msrun()
    device_id = int(os.environ.get("DEVICE_ID", 0)) if msrun else cfg.device_id
    ms.set_device(target, None if target == "CPU" else device_id)
    set_precision(cfg)
    cpu_threads = distributed.join(target, cfg.cpu_threads) if msrun else cfg.cpu_threads
    if target == "CPU" and cpu_threads:
        # MindSpore's default pool spins more threads than a core pinned to one run can serve.
        ms.device_context.cpu.op_tuning.threads_num(cpu_threads)
    os.environ["DEVICE_ID"] = str(device_id)
    ms.set_seed(cfg.seed)
