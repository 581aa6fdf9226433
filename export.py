"""Export a trained checkpoint for deployment: MAML's adapt-then-classify graph as a MINDIR file.

    python export.py --ckpt checkpoints/omniglot_5way_1shot_background_augmented/best.ckpt [--file_name maml] [--file_format MINDIR]
                     [--support_images N] [--query_images M] [--key value ...]

The graph fine-tunes the checkpoint's meta-parameters on a support set and classifies the queries,
as predict.py does, so a deployment adapts to its own classes. Inputs: support images
(1, N, 1, imgsz, imgsz) float32, their labels (1, N) int32 in 0..n_way-1, query images
(1, M, 1, imgsz, imgsz) float32; output: query logits (1, M, n_way) after update_step_test
inner steps of size update_lr (a MAML++ checkpoint's learned per-step learning rates). N and M may vary from call to call unless fixed with
--support_images / --query_images, for runtimes that need static shapes. The images must be
prepared as predict.py prepares them (src/data/image_folder.py: grey-scale, imgsz x imgsz, ink 1 on 0).
Each query's logits depend only on the support set and itself (batch norm takes the support set's
statistics), so a deployment may send one query at a time; `--transductive true` exports the query-batch
normalisation of MAML's papers instead.
"""
import re
import shutil
import tempfile
from pathlib import Path

import mindspore as ms

from src.engine.loading import fine_tuning, load_for_inference
from src.model_utils.atomic_file import write_atomic
from src.model_utils.errors import ArgumentParser, UserError, run_cli
from src.model_utils.log import log
from src.model_utils.memory import check_memory
from src.model_utils.outputs import check_output_file
from src.model_utils.paths import path_type

FORMATS = ("MINDIR",)
SUFFIX = ".mindir"


def parse_args(argv):
    """(export's own options, the remaining `--key value` settings for the checkpoint's config)."""
    parser = ArgumentParser(
        description=__doc__.split("\n\n", 1)[0],
        epilog="Any key of default_config.yaml may follow as --key value, e.g. --update_step_test 5.")
    parser.add_argument("--file_name", default="maml", type=path_type("--file_name"), help=f"output file; {SUFFIX} is appended unless present")
    parser.add_argument("--file_format", default="MINDIR", help="MINDIR, the one format that holds this graph")
    parser.add_argument("--support_images", default="0", help="fixed number N of support images (0: any)")
    parser.add_argument("--query_images", default="0", help="fixed number M of query images (0: any)")
    args, rest = parser.parse_known_args(argv)
    if args.file_format.upper() not in FORMATS:
        raise UserError(f"file_format {args.file_format!r} is not supported: use MINDIR (MindSpore's ONNX exporter "
                        "cannot hold the graph's batch-norm gradients)")
    for key in ("support_images", "query_images"):
        value = getattr(args, key)
        if not re.fullmatch(r"[0-9]{1,9}", value):
            raise UserError(f"--{key} takes a whole number >= 0 (0: any number), got {value!r}")
        setattr(args, key, int(value))
    out = Path(args.file_name)
    if not args.file_name or args.file_name.endswith("/") or not out.name or out.is_dir():
        raise UserError(f"--file_name {args.file_name!r} is not a file name: pass e.g. --file_name maml")
    args.path = out if out.suffix == SUFFIX else out.with_name(out.name + SUFFIX)
    check_output_file(args.path, "--file_name", "an export", None)  # never replaces a file
    return args, rest


def graph_inputs(cfg, support_images, query_images):
    """Input placeholders of the exported graph; a dimension of None takes any size."""
    def images(count):
        return ms.Tensor(shape=[1, count or None, 1, cfg.imgsz, cfg.imgsz], dtype=ms.float32)
    return images(support_images), ms.Tensor(shape=[1, support_images or None], dtype=ms.int32), images(query_images)


def main(argv=None):
    args, rest = parse_args(argv)
    cfg, maml, meta = load_for_inference(rest, user_images=True)
    check_memory(cfg, f"--support_images {args.support_images} --query_images {args.query_images}",
                 args.support_images + args.query_images, "pass smaller fixed numbers (0: any number)")
    inputs = graph_inputs(cfg, args.support_images, args.query_images)
    log(f"exporting {cfg.ckpt} (step {meta['step']}, {cfg.n_way}-way): "
        f"{fine_tuning(cfg)}, then the query logits, {'the queries as one batch' if cfg.transductive else 'each query on its own'}")
    with tempfile.TemporaryDirectory() as tmp:
        # MAML's own construct: the inner loop, its gradients included, becomes part of the graph.
        ms.export(maml, *inputs, cfg.update_step_test, file_name=str(Path(tmp) / "graph"), file_format="MINDIR")

        def copy(dst):
            with open(Path(tmp) / f"graph{SUFFIX}", "rb") as src:
                shutil.copyfileobj(src, dst)
        write_atomic(args.path, copy, "pass another --file_name")
    n, m = args.support_images or "N", args.query_images or "M"
    image = f"1, {cfg.imgsz}, {cfg.imgsz}) float32"
    log(f"wrote {args.path}: inputs support images (1, {n}, {image}, support labels (1, {n}) int32 in "
        f"0..{cfg.n_way - 1}, query images (1, {m}, {image}; output query logits (1, {m}, {cfg.n_way}) float32")
    if cfg.redraw:
        log("the checkpoint was trained on redrawn images (redraw: true): prepare every image, Omniglot's own too, "
            "as src/data/image_folder.image_to_ink_map(image, imgsz, redraw=True) does")
    return args.path


if __name__ == "__main__":
    run_cli(main)
