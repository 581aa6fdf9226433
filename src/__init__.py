"""MAML (Finn et al., 2017) for few-shot Omniglot classification in MindSpore."""
import os

# Every entry point imports this package before MindSpore runs a kernel. On CPUs with AVX-512,
# the oneDNN bundled with MindSpore 2.10 runs grouped convolutions (the batched tasks) with its
# slow reference kernel; capped at AVX2 it picks its JIT gemm kernel. oneDNN reads
# the variable at its first primitive, so this works even after `import mindspore`. A value the
# user has set is kept. See docs/performance.md.
os.environ.setdefault("ONEDNN_MAX_CPU_ISA", "AVX2")
