"""A few-shot task from demo.py's inputs: one named example image per class and one query image.

The images (PIL images or arrays, e.g. a drawing canvas's black strokes on white or on transparency) go
through predict.py's conversion (src/data/image_folder.py), so the network sees what it was trained on. An
image in which that conversion finds no ink counts as not drawn. Bad input is a UserError saying what to do.
"""
import numpy as np
from PIL import Image

from src.data.image_folder import check_class_count, image_to_ink_map
from src.model_utils.errors import UserError

BLANK = 0.05  # an ink map whose darkest pixel holds less ink than this shows nothing drawn


def _ink(image, imgsz, redraw):
    """The image's ink map, or None when there is no image or nothing is drawn on it."""
    if image is None:
        return None
    try:
        ink = image_to_ink_map(image, imgsz, redraw)
    except (OSError, ValueError, TypeError, Image.DecompressionBombError) as err:
        raise UserError(f"cannot read an uploaded image ({err}): upload a PNG or JPEG, or draw instead") from None
    return ink if ink.max() >= BLANK else None


def drawn_task(names, images, query, imgsz, max_classes, redraw=False):
    """(class names, support images (N, 1, imgsz, imgsz), labels (N,), query (1, 1, imgsz, imgsz)) of the
    classes that have a drawing, names[i] naming images[i]. A slot with neither a name nor a drawing is left out.
    `redraw`: the checkpoint's setting (src/data/omniglot_like.py)."""
    classes, support = [], []
    for slot, (name, image) in enumerate(zip(names, images), start=1):
        name, ink = (name or "").strip(), _ink(image, imgsz, redraw)
        if ink is None and name:
            raise UserError(f"class {name!r} has no drawing: draw or upload an example of it, or clear its name")
        if ink is not None and not name:
            raise UserError(f"the drawing of class {slot} has no name: type its name above it")
        if ink is None:
            continue
        if name in classes:
            raise UserError(f"two classes are named {name!r}: give each class its own name")
        classes.append(name)
        support.append(ink)
    check_class_count(len(classes), max_classes, f"{len(classes) or 'no'} class{'es' if len(classes) != 1 else ''} "
                      "drawn", "draw and name an example of each class")
    x_qry = _ink(query, imgsz, redraw)
    if x_qry is None:
        raise UserError("no query drawn: draw or upload the character to classify")
    return classes, np.stack(support)[:, None], np.arange(len(classes), dtype=np.int32), x_qry[None, None]
