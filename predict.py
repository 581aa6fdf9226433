"""Few-shot classification of your own images with a trained checkpoint.

    python predict.py --ckpt checkpoints/omniglot_5way_1shot/best.ckpt --support_dir SUPPORT --query_dir QUERY

SUPPORT holds one subfolder per class, named after the class, with one or more example images
(at most the checkpoint's n_way classes); QUERY holds the images to classify. The checkpoint's
meta-parameters are fine-tuned on the support images (update_step_test inner steps of size
update_lr, both from the checkpoint unless overridden) and each query gets the most probable class.

MAML's batch norm normalises with the statistics of the images at hand (Finn et al. do the same at
test time), so the queries are classified together as one batch: give a few per class rather
than a single image.
"""
import numpy as np
import mindspore as ms

from src import checkpoint
from src.device import setup_device
from src.errors import run_cli
from src.image_folder import read_queries, read_support
from src.maml import build_maml
from src.metrics import log


def softmax(logits):
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def main(argv=None):
    cfg, params, meta = checkpoint.load_for_inference(argv)
    names, x_spt, y_spt = read_support(cfg.support_dir, cfg.imgsz, cfg.n_way)
    files, x_qry = read_queries(cfg.query_dir, cfg.imgsz)
    setup_device(cfg)
    maml = build_maml(cfg)
    checkpoint.load_into(maml.learner, params, cfg.ckpt)
    log(f"adapting {cfg.ckpt} (step {meta['step']}, {cfg.n_way}-way) to {len(names)} classes, {len(y_spt)} support "
        f"images, in {cfg.update_step_test} inner steps of size {cfg.update_lr}")
    logits = maml(ms.Tensor(x_spt[None]), ms.Tensor(y_spt[None]), ms.Tensor(x_qry[None]), cfg.update_step_test)
    # Output units beyond the support's classes stand for no class here: they take no part.
    probs = softmax(logits.asnumpy()[0, :, :len(names)])
    width = max(len(path.name) for path in files)
    predictions = []
    for path, p in zip(files, probs):
        best = int(p.argmax())
        predictions.append((path.name, names[best], float(p[best])))
        print(f"{path.name:<{width}}  {names[best]}  {p[best]:.3f}", flush=True)
    return predictions


if __name__ == "__main__":
    run_cli(main)
