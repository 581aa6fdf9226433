"""A user's own few-shot task from folders of images: support/<class name>/*.png and query/*.png.

Images of any size and any format Pillow reads go through the same conversion as the Omniglot
training data (grey-scale, resized to imgsz, inverted so that dark strokes on light paper become
ink 1, stored as float16), so the network sees what it was trained on.
"""
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from src.data_preprocess import ink_map
from src.errors import UserError


def _folder(path, what, option):
    if not path:
        raise UserError(f"no {what} folder given: pass {option} DIR")
    if not Path(path).is_dir():
        raise UserError(f"{what} folder {path} not found: pass {option} an existing folder")
    return Path(path)


def _image_files(folder):
    """Visible files, sorted; anything that is not an image is caught when it is read."""
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def read_image(path, imgsz):
    try:
        with Image.open(path) as img:
            img.load()
            return ink_map(img, imgsz).astype(np.float16).astype(np.float32)
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        reason = "not an image" if isinstance(err, UnidentifiedImageError) else err
        raise UserError(f"cannot read image {path} ({reason}): remove it or replace it with a PNG or JPEG") from None


def read_support(support_dir, imgsz, max_classes):
    """(class names, images (N, 1, imgsz, imgsz), labels (N,)) from one subfolder per class."""
    root = _folder(support_dir, "support", "--support_dir")
    classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        raise UserError(f"support folder {root} has {len(classes)} class subfolders: put each class's "
                        "example images in a subfolder named after the class, at least 2 classes")
    if len(classes) > max_classes:
        raise UserError(f"support folder {root} has {len(classes)} classes but the checkpoint classifies "
                        f"at most {max_classes} (it was trained {max_classes}-way): use at most {max_classes} "
                        "classes or a checkpoint trained with a larger n_way")
    images, labels = [], []
    for label, folder in enumerate(classes):
        files = _image_files(folder)
        if not files:
            raise UserError(f"class folder {folder} is empty: put at least one example image in it or remove it")
        images += [read_image(path, imgsz) for path in files]
        labels += [label] * len(files)
    return [p.name for p in classes], np.stack(images)[:, None], np.array(labels, np.int32)


def read_queries(query_dir, imgsz):
    """(file paths, images (Q, 1, imgsz, imgsz)) of the images to classify."""
    root = _folder(query_dir, "query", "--query_dir")
    files = _image_files(root)
    if not files:
        raise UserError(f"query folder {root} holds no images: put the images to classify in it")
    return files, np.stack([read_image(path, imgsz) for path in files])[:, None]
