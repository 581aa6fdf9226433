"""Few-shot classification of your own images with a trained checkpoint.

    python predict.py --ckpt checkpoints/omniglot_5way_1shot_background_augmented/best.ckpt --support_dir SUPPORT --query_dir QUERY

SUPPORT holds one subfolder per class, named after the class, with one or more example images
(at most the checkpoint's n_way classes); QUERY holds the images to classify. The checkpoint's
meta-parameters are fine-tuned on the support images (update_step_test inner steps of size
update_lr, both from the checkpoint unless overridden; a MAML++ checkpoint's learned per-step
learning rates instead of update_lr) and each query gets the most probable class.
Standard output has one tab-separated line per query: file name, class, probability (names with
control characters or backslashes are written with Python escapes such as \\n, so one query is
always one line); progress and notes go to standard error.

Each query is classified on its own: batch norm normalises it with the support set's statistics
(transductive false), so a query gets the same answer alone as among others. `--transductive true`
normalises the queries with their own batch's statistics instead, as MAML's papers test.
"""
import sys

import numpy as np
import mindspore as ms

from src.data.image_folder import read_queries, read_support
from src.engine.loading import fine_tuning, load_for_inference
from src.maml import AdaptAndScore
from src.model_utils.errors import one_line, run_cli
from src.model_utils.log import log


def softmax(logits):
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def class_probabilities(adapt, x_spt, y_spt, x_qry, n_classes):
    """(queries, n_classes) class probabilities after fine-tuning `adapt` (an AdaptAndScore) on one support
    set. Output units beyond the support's classes stand for no class here: they take no part."""
    logits = adapt.predict(ms.Tensor(x_spt[None]), ms.Tensor(y_spt[None]), ms.Tensor(x_qry[None]))
    return softmax(logits.asnumpy()[0, :, :n_classes])


def main(argv=None):
    cfg, maml, meta = load_for_inference(argv, user_images=True)
    names, x_spt, y_spt, skipped_spt = read_support(cfg.support_dir, cfg.imgsz, cfg.n_way, cfg.redraw)
    files, x_qry, skipped_qry = read_queries(cfg.query_dir, cfg.imgsz, cfg.redraw)
    skipped = skipped_spt + skipped_qry
    if skipped:
        log(f"left out {len(skipped)} entries that are not image files in a class folder (or are hidden): "
            f"{one_line(skipped[0])}, ...", sys.stderr)
    log(f"adapting {cfg.ckpt} (step {meta['step']}, {cfg.n_way}-way) to {len(names)} classes, {len(y_spt)} support "
        f"images{', every image redrawn' if cfg.redraw else ''}, in {fine_tuning(cfg)}; {'the queries as one batch' if cfg.transductive else 'each query on its own'}",
        sys.stderr)
    probs = class_probabilities(AdaptAndScore(maml, cfg.update_step_test), x_spt, y_spt, x_qry, len(names))
    predictions = []
    for path, p in zip(files, probs):
        best = int(p.argmax())
        predictions.append((path.name, names[best], float(p[best])))
        print(f"{one_line(path.name)}\t{one_line(names[best])}\t{p[best]:.3f}", flush=True)
    return predictions


if __name__ == "__main__":
    run_cli(main)
