"""How predict.py's accuracy holds up when the images look like a user's rather than Omniglot's files.

    python benchmarks/robustness.py --data_path /data/omniglot [--n_way 5 20] [--tasks 200] [--seed 0]
                                    [--transforms invert offcentre ...] [--output robustness.json] [--key value ...]

Fixed N-way 1-shot meta-test tasks of each checkpoint's split (the tasks eval.py draws, with the same
seed) are rendered from the original 105x105 drawings in the zips, every support and query image is
changed by one transformation (inverted, moved, scaled, re-stroked, photographed on grey paper,
rotated, warped), written as an image file, read back by predict.py's own reader
(src/data/image_folder.read_image), then fine-tuned and scored with the checkpoint as predict.py does.
Prints a table of query accuracy per transformation beside the clean figure on the same tasks and
writes the same as JSON (--output). --ckpt names the checkpoints (default: the shipped
checkpoints/omniglot_{N}way_1shot/best.ckpt of each --n_way); other --key value pairs are
settings of the checkpoint's config (e.g. --transductive false, --k_qry_test 5, --cpu_threads 1).
"""
import io
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script: make `import src...` resolve from the repo root

import numpy as np  # noqa: E402
from PIL import Image, ImageFilter, ImageOps  # noqa: E402

from src.data.episode_sampler import fixed_task_batches  # noqa: E402
from src.data.image_folder import read_image  # noqa: E402
from src.data.release import NUM_DRAWERS, SOURCE_SIZE, list_omniglot, read_source  # noqa: E402
from src.data.splits import split_class_ids, split_rotates  # noqa: E402
from src.engine.evaluation import mean_ci95  # noqa: E402
from src.engine.loading import load_for_inference  # noqa: E402
from src.maml import AdaptAndScore  # noqa: E402
from src.model_utils.atomic_file import write_atomic  # noqa: E402
from src.model_utils.errors import ArgumentParser, UserError, run_cli  # noqa: E402
from src.model_utils.log import log  # noqa: E402
from src.model_utils.outputs import check_output_file  # noqa: E402

import mindspore as ms  # noqa: E402

PAPER, INK = 255, 0


def _on_canvas(img, size, rng):
    canvas = Image.new("L", (size, size), PAPER)
    x, y = rng.integers(0, size - img.width + 1, 2)
    canvas.paste(img, (int(x), int(y)))
    return canvas


def _scaled(img, factor):
    """The drawing resized by `factor`; a smaller one stays centred on a canvas of the original size."""
    side = round(SOURCE_SIZE * factor)
    small = img.resize((side, side), Image.Resampling.LANCZOS)
    if side >= SOURCE_SIZE:
        return small
    canvas = Image.new("L", img.size, PAPER)
    canvas.paste(small, ((SOURCE_SIZE - side) // 2,) * 2)
    return canvas


def _grey_paper(img, rng):
    """Ink and paper as a phone photo has them: grey paper lit unevenly, sensor noise, JPEG (see _encode)."""
    ink = 1.0 - np.asarray(img, np.float32) / 255.0
    ramp = np.linspace(0.0, 1.0, img.width, dtype=np.float32)
    paper = 190.0 - 50.0 * (ramp[None, :] if rng.random() < 0.5 else ramp[:, None])
    grey = paper * (1.0 - ink) + 50.0 * ink + rng.normal(0.0, 12.0, ink.shape)
    return Image.fromarray(grey.clip(0, 255).astype(np.uint8))


def _perspective(img, rng, strength=0.12):
    """A mild perspective warp: each corner moves by up to `strength` of the side, inwards or outwards."""
    side = img.width
    corners = np.array([[0, 0], [side, 0], [side, side], [0, side]], np.float64)
    moved = corners + rng.uniform(-strength, strength, corners.shape) * side
    # Pillow maps each output pixel (x, y) to the input ((a x + b y + c) / (g x + h y + 1), ...).
    rows = []
    for (x, y), (u, v) in zip(moved, corners):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
    coeffs = np.linalg.solve(np.array(rows), corners.reshape(-1))
    return img.transform(img.size, Image.Transform.PERSPECTIVE, tuple(coeffs), Image.Resampling.BICUBIC,
                         fillcolor=PAPER)


# Each takes the 8-bit drawing (black ink on white, 105x105) and a generator for its random choices.
TRANSFORMS = {
    "clean": None,
    "invert": lambda img, rng: ImageOps.invert(img),
    "offcentre": lambda img, rng: _on_canvas(img, 300, rng),
    "scale0.5": lambda img, rng: _scaled(img, 0.5),
    "scale2": lambda img, rng: _scaled(img, 2.0),
    "thicker": lambda img, rng: img.filter(ImageFilter.MinFilter(3)),  # the dark ink spreads by one pixel
    "thinner": lambda img, rng: img.filter(ImageFilter.MaxFilter(3)),
    "grey_noisy_jpeg": _grey_paper,
    "rotate+10": lambda img, rng: img.rotate(10, Image.Resampling.BICUBIC, fillcolor=PAPER),
    "rotate-10": lambda img, rng: img.rotate(-10, Image.Resampling.BICUBIC, fillcolor=PAPER),
    "perspective": _perspective,
}
JPEG_QUALITY = 60


def _encode(img, name):
    """The image as the file a user would have: JPEG for the photographed one, PNG otherwise."""
    buf = io.BytesIO()
    options = {"format": "JPEG", "quality": JPEG_QUALITY} if name == "grey_noisy_jpeg" else {"format": "PNG"}
    img.save(buf, **options)
    buf.seek(0)
    return buf


def _render(original, name, rng):
    """One drawing as an image file after transformation `name`; the clean one is the original file's image."""
    if name == "clean":
        return _encode(original, name)
    return _encode(TRANSFORMS[name](original.convert("L"), rng), name)


def _task_indices(class_ids, cfg, num_tasks, seed):
    """(class id, drawer, quarter turns) of every image of each of the fixed tasks, in the order eval.py
    draws them: the task sampler is run on 2x2 stand-ins whose top-left pixel holds the image's number."""
    stand_in = np.full((int(class_ids.max()) + 1, NUM_DRAWERS, 2, 2), -1.0, np.float32)
    stand_in[:, :, 0, 0] = np.arange(stand_in.shape[0] * NUM_DRAWERS).reshape(-1, NUM_DRAWERS)
    corner_turns = {(0, 0): 0, (1, 0): 1, (1, 1): 2, (0, 1): 3}  # where np.rot90 moves the top-left pixel
    for x_spt, _, x_qry, _ in fixed_task_batches(stand_in, class_ids, cfg.n_way, cfg.k_spt, cfg.k_qry_test,
                                                 num_tasks, 1, split_rotates(cfg.split), seed):
        task = []
        for x in (x_spt[0, :, 0], x_qry[0, :, 0]):
            flat = x.reshape(len(x), 4).argmax(axis=1)
            number = x.reshape(len(x), 4).max(axis=1).astype(np.int64)
            task.append([(int(n) // NUM_DRAWERS, int(n) % NUM_DRAWERS, corner_turns[divmod(int(f), 2)])
                         for n, f in zip(number, flat)])
        yield task


def _originals(data_path, class_ids):
    """{class id: [the 20 original drawings as PIL images]} of the given classes, from the raw data."""
    listed = list_omniglot(data_path)
    drawings = {}
    for class_id in class_ids:
        drawings[int(class_id)] = []
        for container, ref, where in listed[class_id][1]:
            with Image.open(io.BytesIO(read_source(container, ref, where))) as img:
                img.load()
                drawings[int(class_id)].append(img.copy())
    return drawings


def _turned(img, turns):
    """The drawing turned as the task sampler turns its class (np.rot90, counter-clockwise)."""
    return Image.fromarray(np.rot90(np.asarray(img), turns)) if turns else img


def _images(task_images, originals, name, imgsz, rng, redraw=False):
    return np.stack([read_image(_render(_turned(originals[c][d], t), name, rng), imgsz, redraw)
                     for c, d, t in task_images])[:, None]


def run_checkpoint(argv, names, num_tasks, seed):
    """{transformation: {acc, ci95}} of one checkpoint (its settings from --ckpt and the --key value argv)."""
    cfg, maml, meta = load_for_inference(argv, user_images=True)
    scorer = AdaptAndScore(maml, cfg.update_step_test)
    test = split_class_ids([entry for entry, _ in list_omniglot(cfg.data_path)], cfg.split)["test"]
    tasks = list(_task_indices(test, cfg, num_tasks, seed))
    originals = _originals(cfg.data_path, test)
    n, ks, kq = cfg.n_way, cfg.k_spt, cfg.k_qry_test
    y_spt, y_qry = np.repeat(np.arange(n, dtype=np.int32), ks), np.repeat(np.arange(n, dtype=np.int32), kq)
    batch = min(cfg.eval_batch, num_tasks)
    results = {}
    for number, name in enumerate(names):
        start = time.time()
        accs = np.zeros(num_tasks, np.float32)
        for first in range(0, num_tasks, batch):
            chunk = list(range(first, min(first + batch, num_tasks)))
            x_spt, x_qry = [], []
            for t in chunk:
                rng = np.random.default_rng([seed, number, t])
                x_spt.append(_images(tasks[t][0], originals, name, cfg.imgsz, rng, cfg.redraw))
                x_qry.append(_images(tasks[t][1], originals, name, cfg.imgsz, rng, cfg.redraw))
            padded = [np.stack([part[i % len(chunk)] for i in range(batch)])
                      for part in (x_spt, [y_spt] * len(chunk), x_qry, [y_qry] * len(chunk))]
            _, acc = scorer(*(ms.Tensor(part) for part in padded))
            accs[first:first + len(chunk)] = acc[-1, :len(chunk)]
        mean, ci95 = mean_ci95(accs)
        results[name] = {"acc": mean, "ci95": ci95}
        log(f"  {cfg.n_way}-way {name}: {100 * mean:.2f} +/- {100 * ci95:.2f}% ({time.time() - start:.0f} s)", sys.stderr)
    return cfg, meta, results


def table(reports):
    """Markdown table: one row per transformation, one column per checkpoint, the change from clean beside it."""
    names = list(reports[0]["results"])
    head = "| transformation | " + " | ".join(f"{r['n_way']}-way 1-shot" for r in reports) + " |"
    lines = [head, "|---" * (len(reports) + 1) + "|"]
    for name in names:
        cells = []
        for r in reports:
            acc = 100 * r["results"][name]["acc"]
            clean = 100 * r["results"]["clean"]["acc"] if "clean" in r["results"] else None
            delta = "" if name == "clean" or clean is None else f" ({acc - clean:+.2f})"
            cells.append(f"{acc:.2f} ± {100 * r['results'][name]['ci95']:.2f}%{delta}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _is_report(path):
    """Whether `path` holds an earlier report of this benchmark (which --output may replace)."""
    try:
        reports = json.loads(path.read_text(encoding="utf-8")) if path.stat().st_size < 2**20 else None
    except (OSError, ValueError):
        return False
    return isinstance(reports, list) and all(isinstance(report, dict) and "results" in report for report in reports)


def main(argv=None):
    parser = ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ckpt", nargs="+", default=None,
                        help="checkpoints to test (default: the shipped 1-shot checkpoint of each --n_way)")
    parser.add_argument("--n_way", nargs="+", type=int, default=None, help="shipped checkpoints to test (default: 5 20)")
    parser.add_argument("--tasks", type=int, default=200, help="fixed meta-test tasks per checkpoint (default 200)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the tasks (eval.py's eval_seed) and of the "
                        "transformations' random choices (default 0)")
    parser.add_argument("--transforms", nargs="+", default=[name for name in TRANSFORMS if name != "clean"],
                        metavar="NAME", help=f"transformations to test besides clean (default all: "
                        f"{', '.join(name for name in TRANSFORMS if name != 'clean')})")
    parser.add_argument("--output", default=None, help="JSON file for the results (default: none)")
    args, settings = parser.parse_known_args(argv)
    if args.ckpt and args.n_way:
        raise UserError("--ckpt and --n_way both given: a checkpoint has its own n_way; pass one of them")
    if args.tasks < 1 or args.seed < 0:
        raise UserError(f"--tasks must be >= 1 and --seed >= 0, got {args.tasks} and {args.seed}")
    unknown = [name for name in args.transforms if name not in TRANSFORMS]
    if unknown:
        raise UserError(f"unknown transformation {unknown[0]!r}: choose among {', '.join(TRANSFORMS)}")
    if args.output:  # checked before the work: never a checkpoint or a file of the user's
        check_output_file(args.output, "--output", "a robustness report", _is_report)
    ckpts = args.ckpt or [str(REPO / "checkpoints" / f"omniglot_{n}way_1shot" / "best.ckpt") for n in args.n_way or (5, 20)]
    names = ["clean"] + [name for name in dict.fromkeys(args.transforms) if name != "clean"]
    reports = []
    for number, ckpt in enumerate(ckpts):
        log(f"{ckpt}: {args.tasks} tasks, {len(names)} conditions", sys.stderr)
        again = ["--cpu_threads", "0"] if number else []  # MindSpore sets its thread count once per process
        cfg, meta, results = run_checkpoint(["--ckpt", ckpt, *settings, *again], names, args.tasks, args.seed)
        reports.append({"ckpt": ckpt, "ckpt_step": meta["step"], "split": cfg.split, "n_way": cfg.n_way,
                        "k_spt": cfg.k_spt, "k_qry_test": cfg.k_qry_test, "update_step_test": cfg.update_step_test,
                        "transductive": cfg.transductive, "redraw": cfg.redraw, "tasks": args.tasks, "seed": args.seed,
                        "results": results})
    print(table(reports), flush=True)
    if args.output:
        write_atomic(Path(args.output), lambda f: f.write(json.dumps(reports, indent=2).encode() + b"\n"),
                     "pass another --output")
    return reports


if __name__ == "__main__":
    run_cli(main)
