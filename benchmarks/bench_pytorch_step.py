"""Time the same MAML meta-step in PyTorch, written as PyTorch users write it: a loop over tasks.

    pip install torch    # PyTorch is not a dependency of this package; a separate venv suits it
    python benchmarks/bench_pytorch_step.py --order second --task_num 32 --update_step 5

The baseline for bench_meta_step.py, run back to back on the same machine. For each task of the
meta-batch: `update_step` SGD steps on the support set through a functional forward with fast
weights (torch.autograd.grad, create_graph=True for second order, False for first order), then
the query loss / task_num, back-propagated task by task; then one Adam step. The network,
settings (default_config.yaml's) and synthetic episodes are the package's: 3x3 convolutions of
stride 2 with TensorFlow-style 'same' padding (28 -> 14 -> 7 -> 4 -> 2), no bias, batch norm with
the batch's statistics and inner-loop gamma and beta, ReLU, spatial mean, linear layer.

The weights and episodes are drawn with the same NumPy seeds as the package's (src/initializer.py
is not imported: importing src caps oneDNN's ISA, which would change PyTorch's kernels too), so
the first meta-loss, `first_loss` in the JSON, is bench_meta_step.py's with the same arguments up
to float rounding; `--check LOSS` compares it and stops (a check of the network and the inner
loop; the meta-gradient is autograd's). The last line is one JSON object with
bench_meta_step.py's keys where they apply; compile_s is the first step (PyTorch compiles nothing).
"""
import argparse
import json
import math
import resource
import statistics
import sys
import time

import numpy as np

from step_options import DEFAULTS, STEP_LEAST, add_step_options, below_least, synthetic_batch

IMGC, NUM_FILTERS, NUM_BLOCKS = 1, DEFAULTS["num_filters"], DEFAULTS["num_blocks"]  # grey-scale images
UPDATE_LR, META_LR, SEED = DEFAULTS["update_lr"], DEFAULTS["meta_lr"], DEFAULTS["seed"]
BN_EPS = 1e-5  # src/learner.py's, not a setting (tests/test_bench_pytorch_step.py keeps them equal)
CHECK_RTOL = 1e-5


def kaiming_normal(rng, shape):
    """N(0, 2 / fan_in), drawn in the order and with the seed of the package's Learner."""
    return rng.normal(0.0, np.sqrt(2.0 / np.prod(shape[1:])), size=shape).astype(np.float32)


def initial_weights(n_way, seed=SEED):
    """[conv weight, gamma, beta] per block, then fc weight and bias, as NumPy arrays."""
    rng = np.random.default_rng(seed)
    weights, in_ch = [], IMGC
    for _ in range(NUM_BLOCKS):
        weights += [kaiming_normal(rng, (NUM_FILTERS, in_ch, 3, 3)),
                    np.ones(NUM_FILTERS, np.float32), np.zeros(NUM_FILTERS, np.float32)]
        in_ch = NUM_FILTERS
    return weights + [kaiming_normal(rng, (n_way, NUM_FILTERS)), np.zeros(n_way, np.float32)]


def same_padding(size):
    """(before, after) padding of a 3x3 stride-2 'same' convolution: the output has ceil(size / 2) pixels."""
    total = max((math.ceil(size / 2) - 1) * 2 + 3 - size, 0)
    return total // 2, total - total // 2


def make_meta_step(torch, params, optimizer, update_step, second_order):
    """The meta-step: the per-task loop of MAML implementations in PyTorch."""
    F = torch.nn.functional

    def forward(x, weights):
        h = x
        for block in range(NUM_BLOCKS):
            conv_w, gamma, beta = weights[3 * block: 3 * block + 3]
            before, after = same_padding(h.shape[-1])
            if before == after:
                h = F.conv2d(h, conv_w, stride=2, padding=before)
            else:
                h = F.conv2d(F.pad(h, (before, after, before, after)), conv_w, stride=2)
            h = F.relu(F.batch_norm(h, None, None, gamma, beta, training=True, eps=BN_EPS))
        return F.linear(h.mean(dim=(2, 3)), weights[-2], weights[-1])

    def meta_step(x_spt, y_spt, x_qry, y_qry):
        """Mean query loss over the tasks (before the update); Adam updates the meta-parameters."""
        optimizer.zero_grad()
        task_num = x_spt.shape[0]
        total = 0.0
        for task in range(task_num):
            fast = params
            for _ in range(update_step):
                loss = F.cross_entropy(forward(x_spt[task], fast), y_spt[task])
                grads = torch.autograd.grad(loss, fast, create_graph=second_order)
                fast = [w - UPDATE_LR * g for w, g in zip(fast, grads)]
            query_loss = F.cross_entropy(forward(x_qry[task], fast), y_qry[task]) / task_num
            query_loss.backward()
            total += query_loss.item()
        optimizer.step()
        return total

    return meta_step


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_step_options(parser)
    parser.add_argument("--cpu_threads", type=int, default=0,
                        help="intra-op threads (0 = PyTorch's choice), as in bench_meta_step.py")
    parser.add_argument("--check", type=float, metavar="LOSS",
                        help="bench_meta_step.py's first_loss with the same arguments: run one step, "
                             f"exit 1 unless PyTorch's agrees within {CHECK_RTOL} (relative)")
    args = parser.parse_args()
    problem = below_least(args, {"n_way": 1, "k_spt": 1, "k_qry": 1, "task_num": 1, "update_step": 0, **STEP_LEAST,
                                 "cpu_threads": 0})
    if problem:
        parser.exit(2, f"error: {problem}\n")
    try:
        import torch
    except ImportError:
        parser.exit(2, "error: PyTorch is not installed: `pip install torch` (in a separate venv) to run this baseline\n")
    if args.cpu_threads:
        torch.set_num_threads(args.cpu_threads)
    params = [torch.tensor(w, requires_grad=True) for w in initial_weights(args.n_way)]
    optimizer = torch.optim.Adam(params, lr=META_LR)
    meta_step = make_meta_step(torch, params, optimizer, args.update_step, args.order == "second")
    batch = [torch.from_numpy(a if a.dtype == np.float32 else a.astype(np.int64))  # int64 labels, as torch wants
             for a in synthetic_batch(args.n_way, args.k_spt, args.k_qry, args.task_num, np.random.default_rng(0))]

    start = time.perf_counter()
    first_loss = meta_step(*batch)
    compile_s = time.perf_counter() - start
    print(f"first step: {compile_s:.2f} s, meta-loss {first_loss:.6f}", flush=True)
    if args.check is not None:
        if not (math.isfinite(first_loss) and math.isclose(first_loss, args.check, rel_tol=CHECK_RTOL)):
            print(f"error: PyTorch's first meta-loss {first_loss:.6f} differs from the package's {args.check:.6f} "
                  f"by more than {CHECK_RTOL} (relative): were both run with the same arguments?", file=sys.stderr)
            sys.exit(1)
        print(f"check passed: the package's first meta-loss is {args.check:.6f}")
        return
    for _ in range(args.warmup):
        meta_step(*batch)
    times = []
    for step in range(args.steps):
        start = time.perf_counter()
        meta_step(*batch)
        times.append(time.perf_counter() - start)
        print(f"step {step + 1}: {times[-1]:.3f} s", flush=True)
    print(json.dumps({
        "framework": "pytorch", "torch": torch.__version__, "order": args.order, "n_way": args.n_way,
        "k_spt": args.k_spt, "k_qry": args.k_qry, "task_num": args.task_num, "update_step": args.update_step,
        "cpu_threads": args.cpu_threads, "torch_threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "s_per_step": round(statistics.median(times), 4), "compile_s": round(compile_s, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "first_loss": round(first_loss, 6)}))


if __name__ == "__main__":
    main()
