"""Which formulation of the convolution and batch norm each backend runs: the one place `auto` is resolved.

All choices compute the same numbers (tests/test_formulations.py); they differ in which kernels the
graph needs (docs/op_support.md):
- CPU: one grouped convolution and the fused batch norm, the fastest there.
- GPU: the elementary batch norm. MindSpore's GPU BatchNormGradGrad reads the inverse standard deviation
  the forward kernel saves as if it were the variance, so the fused form's second derivative is suspect
  until a device check (benchmarks/device_check.py) shows it right.
- Ascend: the convolution as matrix products (`matmul`) (Conv2D's group > 1 is only depthwise
  there; one convolution per task makes a graph that grows with the task count and is slow to compile:
  docs/op_support.md) and the elementary batch norm (BatchNormGradGrad has only an AICPU kernel).
"""
CONV_IMPLS = ("grouped", "per_task", "matmul")
BN_IMPLS = ("fused", "elementary")
AUTO = {"CPU": ("grouped", "fused"), "GPU": ("grouped", "elementary"), "Ascend": ("matmul", "elementary")}
CONV_CHOICES = ("auto",) + CONV_IMPLS
BN_CHOICES = ("auto",) + BN_IMPLS


def resolve(cfg):
    """(conv_impl, bn_impl) of the config, `auto` replaced by its backend's choice."""
    conv, bn = AUTO[cfg.device_target]
    return (conv if cfg.conv_impl == "auto" else cfg.conv_impl), (bn if cfg.bn_impl == "auto" else cfg.bn_impl)
