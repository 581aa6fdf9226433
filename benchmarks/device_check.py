"""Check a GPU or NPU against the CPU: the meta-gradient, 20 training steps and a shipped checkpoint's accuracy.

    python benchmarks/device_check.py --device_target GPU --data_path /data/omniglot --npy_dir /tmp/omniglot_npy
    python benchmarks/device_check.py --device_target CPU --short ...        (the check itself, in CI)

On the device, with the device's settings (src/model_utils/device.py: TF32/HF32 off) it
1. computes the meta-gradient of a fixed batch (a 16-filter network, 4 tasks, 5 inner steps, the MAML++
   options and the multi-step loss on) in both orders, with each formulation the backend's `auto` can pick
   and with the fused batch norm too, and compares each with the CPU's (grouped + fused): relative error
   |g - g_cpu| / |g_cpu| at most GRAD_RTOL;
2. trains 20 meta-steps (second order, 8 tasks of 5-way 1-shot Omniglot from seeded episodes) from the
   seeded initialisation: each step's loss within LOSS_RTOL of the CPU's;
3. evaluates the shipped 5-way 1-shot checkpoint on the first 100 fixed test tasks: the mean accuracy within
   ACC_ATOL of the CPU's.
The CPU values are in device_check_reference.npz beside this file (`--write_reference` on CPU writes it).
Prints each comparison and the time of a training step, and exits 1 on a mismatch beyond the tolerance.
`--short`: the `auto` formulation only, 3 training steps, 8 test tasks (the same tasks, the reference's
prefix).
"""
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: `import src...` from the repo root

import mindspore as ms  # noqa: E402

from src.data.dataset import prepare_omniglot_for  # noqa: E402
from src.data.episode_sampler import EpisodeSampler, fixed_task_batches  # noqa: E402
from src.data.splits import split_class_ids, split_rotates  # noqa: E402
from src.engine.loading import inference_settings, trained_maml  # noqa: E402
from src.formulation import AUTO  # noqa: E402
from src.maml import AdaptAndScore, MetaGradient, build_maml  # noqa: E402
from src.meta_optimizer import MetaOptimizer  # noqa: E402
from src.model_utils.config import load_config  # noqa: E402
from src.model_utils.device import setup_device  # noqa: E402
from src.model_utils.errors import ArgumentParser, UserError, run_cli  # noqa: E402
from src.multi_step_loss import step_loss_weights  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
REFERENCE = Path(__file__).with_name("device_check_reference.npz")
CHECKPOINT = REPO / "checkpoints" / "omniglot_5way_1shot" / "best.ckpt"
GRAD_RTOL = 1e-3  # float32 sums in another order, five inner steps deep
LOSS_RTOL = 2e-3  # 20 Adam steps let float32 differences grow
ACC_ATOL = 0.005  # half a percentage point: a few of 7500 queries may flip
GRAD_SETTINGS = ["--num_filters", "16", "--task_num", "4", "--k_qry", "2", "--update_step", "5",
                 "--learn_inner_lr", "true", "--per_step_bn", "true", "--msl_steps", "100"]
TRAIN_SETTINGS = ["--task_num", "8", "--update_step", "5", "--seed", "1"]
TRAIN_STEPS, EVAL_TASKS = 20, 100
SHORT_TRAIN_STEPS, SHORT_EVAL_TASKS = 3, 8


def formulations(target, short):
    """The (conv_impl, bn_impl) pairs to check on `target`: its auto's, and with the fused batch norm."""
    conv, bn = AUTO[target]
    return [(conv, bn)] if short else list(dict.fromkeys([(conv, bn), (conv, "fused")]))


def meta_gradients(common, target, formulation):
    """{order: (loss, flat meta-gradient)} of the fixed batch with one formulation."""
    cfg = load_config(common + GRAD_SETTINGS + ["--device_target", target, "--conv_impl", formulation[0],
                                                "--bn_impl", formulation[1]])
    rng = np.random.default_rng(0)

    def images(shots):
        return rng.random((cfg.task_num, cfg.n_way * shots, 1, cfg.imgsz, cfg.imgsz), dtype=np.float32)

    def labels(shots):
        return np.tile(np.repeat(np.arange(cfg.n_way, dtype=np.int32), shots), (cfg.task_num, 1))

    batch = [images(cfg.k_spt), labels(cfg.k_spt), images(cfg.k_qry), labels(cfg.k_qry),
             step_loss_weights(cfg.update_step, cfg.msl_steps, 0)]
    out = {}
    for order in ("second", "first"):
        maml = build_maml(cfg)
        (loss, _), grads = MetaGradient(maml, cfg.update_step, order == "first")(*map(ms.Tensor, batch))
        out[order] = (float(loss.asnumpy()), np.concatenate([g.asnumpy().ravel() for g in grads]))
    return out


def train_losses(common, target, steps):
    """The losses of `steps` seeded meta-steps on Omniglot, and the median seconds of a step after the first."""
    cfg = load_config(common + TRAIN_SETTINGS + ["--device_target", target])
    data = prepare_omniglot_for(cfg, log=lambda message: None)
    classes = split_class_ids(data.classes, cfg.split)["train"]
    sampler = EpisodeSampler(data.images, classes, cfg.n_way, cfg.k_spt, cfg.k_qry, cfg.task_num,
                             split_rotates(cfg.split), cfg.seed)
    meta_optimizer = MetaOptimizer(cfg)
    losses, seconds = [], []
    for step in range(steps):
        cell, extra = meta_optimizer.step_at(step)
        batch = [ms.Tensor(part) for part in sampler.next_batch()] + list(extra)
        start = time.perf_counter()
        losses.append(float(cell(*batch)[0].asnumpy()))
        seconds.append(time.perf_counter() - start)
    return np.array(losses), float(np.median(seconds[1:])) if steps > 1 else seconds[0]


def test_accuracies(common, target, tasks):
    """Per-task query accuracy of the shipped checkpoint on the first `tasks` fixed test tasks."""
    cfg, params, _ = inference_settings(common + ["--device_target", target, "--ckpt", str(CHECKPOINT)])
    scorer = AdaptAndScore(trained_maml(cfg, params, CHECKPOINT), cfg.update_step_test)
    data = prepare_omniglot_for(cfg, log=lambda message: None)
    classes = split_class_ids(data.classes, cfg.split)["test"]
    accs = []
    for batch in fixed_task_batches(data.images, classes, cfg.n_way, cfg.k_spt, cfg.k_qry_test, tasks,
                                    min(cfg.eval_batch, tasks), split_rotates(cfg.split), cfg.eval_seed):
        accs.append(scorer(*map(ms.Tensor, batch))[1][-1])
    return np.concatenate(accs)


def relative_error(got, expected):
    return float(np.linalg.norm(got - expected) / np.linalg.norm(expected))


def main(argv=None):
    parser = ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device_target", choices=("CPU", "GPU", "Ascend"), required=True)
    parser.add_argument("--device_id", default="0")
    parser.add_argument("--data_path", default="data/omniglot", help="Omniglot root (raw/*.zip)")
    parser.add_argument("--npy_dir", default="", help="where omniglot.npy is built and read (default: data_path)")
    parser.add_argument("--short", action="store_true", help="the auto formulation, 3 steps, 8 test tasks")
    parser.add_argument("--reference", type=Path, default=REFERENCE, help="the CPU's values (default: %(default)s)")
    parser.add_argument("--write_reference", action="store_true", help="CPU only: write the reference file")
    args = parser.parse_args(argv)
    target = args.device_target
    if args.write_reference and (target != "CPU" or args.short):
        raise UserError("--write_reference writes the CPU's values: pass --device_target CPU without --short")
    if not args.write_reference and not args.reference.is_file():
        raise UserError(f"{args.reference} is missing: restore device_check_reference.npz from the repository")
    common = ["--device_id", args.device_id, "--data_path", args.data_path, "--npy_dir", args.npy_dir]
    setup_device(load_config(common + ["--device_target", target]))
    train_steps, eval_tasks = (SHORT_TRAIN_STEPS, SHORT_EVAL_TASKS) if args.short else (TRAIN_STEPS, EVAL_TASKS)

    if args.write_reference:
        grads = meta_gradients(common, "CPU", AUTO["CPU"])
        losses, seconds = train_losses(common, "CPU", TRAIN_STEPS)
        np.savez_compressed(args.reference, grad_second=grads["second"][1], grad_first=grads["first"][1],
                            loss_second=grads["second"][0], loss_first=grads["first"][0], train_losses=losses,
                            test_accs=test_accuracies(common, "CPU", EVAL_TASKS))
        print(f"wrote {args.reference} ({seconds:.3f} s per training step)")
        return 0

    ref = np.load(args.reference)
    failures = []

    def compare(what, error, tolerance):
        ok = error <= tolerance
        print(f"{'ok  ' if ok else 'FAIL'} {what}: {error:.2e} (tolerance {tolerance:g})", flush=True)
        if not ok:
            failures.append(what)

    for formulation in formulations(target, args.short):
        for order, (loss, grad) in meta_gradients(common, target, formulation).items():
            name = f"meta-gradient {order} order, {'+'.join(formulation)}"
            compare(f"{name}, relative error", relative_error(grad, ref[f"grad_{order}"]), GRAD_RTOL)
    losses, seconds = train_losses(common, target, train_steps)
    compare(f"{train_steps} training steps, largest relative loss difference",
            float(np.max(np.abs(losses - ref["train_losses"][:train_steps]) / ref["train_losses"][:train_steps])),
            LOSS_RTOL)
    accs = test_accuracies(common, target, eval_tasks)
    compare(f"{CHECKPOINT.parent.name} on {eval_tasks} test tasks, accuracy difference",
            abs(float(accs.mean()) - float(ref["test_accs"][:eval_tasks].mean())), ACC_ATOL)
    print(json.dumps({"device_target": target, "short": args.short, "s_per_train_step": round(seconds, 4),
                      "test_acc": round(float(accs.mean()), 5), "failures": failures}))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
