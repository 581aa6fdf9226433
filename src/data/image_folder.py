"""A user's own few-shot task from folders of images: support/<class name>/<images> and query/<images>.

Images of any size and any format Pillow reads are first drawn as an Omniglot original
(src/data/omniglot_like.py: the ink found whatever its polarity, lighting or paper, cropped, centred and
given Omniglot's size and stroke width), then go through the same conversion as the Omniglot
training data (grey-scale, resized to imgsz, inverted so that dark strokes on light paper become
ink 1, stored as float16), so the network sees what it was trained on. Transparent pixels count
as paper, 16-bit greys are rescaled and camera rotation (EXIF) is applied first.
"""
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from src.data.decode import ink_map
from src.data.omniglot_like import omniglot_like
from src.model_utils.errors import UserError

IMAGE_SUFFIXES = frozenset(suffix.lower() for suffix in Image.registered_extensions())


def _folder(path, what, option):
    if not path:
        raise UserError(f"no {what} folder given: pass {option} DIR")
    if not Path(path).is_dir():
        raise UserError(f"{what} folder {path} not found: pass {option} an existing folder")
    return Path(path)


def _entries(folder):
    """(subfolders, image files, everything else) of a folder, each sorted. Hidden entries, special
    files (FIFOs, sockets, devices) and broken or looping links fall in the last list, so that each
    entry left out is reported."""
    try:
        entries = sorted(Path(folder).iterdir())
    except OSError as err:
        raise UserError(f"cannot list {folder} ({err.strerror or err}): check its permissions") from None
    visible = [p for p in entries if not p.name.startswith(".")]
    folders = [p for p in visible if p.is_dir()]
    images = [p for p in visible if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    return folders, images, [p for p in entries if p not in folders and p not in images]


def _as_paper_and_ink(img):
    """An 8-bit image whose background is light, whatever the file's mode."""
    img = ImageOps.exif_transpose(img)
    if img.mode.startswith("I"):  # 16- or 32-bit greys
        img = Image.fromarray((np.asarray(img, np.float64) / 257.0).clip(0, 255).astype(np.uint8))
    if "A" in img.getbands() or "transparency" in img.info:
        rgba = img.convert("RGBA")
        img = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    return img


def image_to_ink_map(image, imgsz, redraw=False):
    """A PIL image or a uint8 array ((H, W) grey, (H, W, 3) RGB or (H, W, 4) RGBA) -> the network's
    imgsz x imgsz float32 ink map, as the training data was stored: read_image's conversion, for images
    already in memory (demo.py's canvases). `redraw`: the checkpoint's setting, an Omniglot file redrawn too."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    return ink_map(omniglot_like(_as_paper_and_ink(image), redraw), imgsz).astype(np.float16).astype(np.float32)


def read_image(path, imgsz, redraw=False):
    try:
        with Image.open(path) as img:
            img.load()
            return image_to_ink_map(img, imgsz, redraw)
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as err:
        reason = "not an image" if isinstance(err, UnidentifiedImageError) else err
        raise UserError(f"cannot read image {path} ({reason}): remove it or replace it with a PNG or JPEG") from None


def read_support(support_dir, imgsz, max_classes, redraw=False):
    """(class names, images (N, 1, imgsz, imgsz), labels (N,), files left out: non-images and files
    outside the class folders)."""
    root = _folder(support_dir, "support", "--support_dir")
    classes, loose_images, loose_others = _entries(root)
    check_class_count(len(classes), max_classes, f"support folder {root} has {len(classes)} class subfolders",
                      "put each class's example images in a subfolder named after the class")
    images, labels, skipped = [], [], loose_images + loose_others  # files outside any class folder
    for label, folder in enumerate(classes):
        _, files, others = _entries(folder)
        if not files:
            raise UserError(f"class folder {folder} holds no image files: put at least one example image "
                            "directly in it, or remove it")
        images += [read_image(path, imgsz, redraw) for path in files]
        labels += [label] * len(files)
        skipped += others
    return [p.name for p in classes], np.stack(images)[:, None], np.array(labels, np.int32), skipped


def read_queries(query_dir, imgsz, redraw=False):
    """(image paths, images (Q, 1, imgsz, imgsz), entries left out: subfolders and non-image files)."""
    root = _folder(query_dir, "query", "--query_dir")
    folders, files, others = _entries(root)
    if not files:
        inside = f" (only the files directly inside are read, not its subfolders {folders[0].name}, ...)" if folders else ""
        raise UserError(f"query folder {root} holds no image files{inside}: put the images to classify in it")
    return files, np.stack([read_image(path, imgsz, redraw) for path in files])[:, None], sorted(folders + others)


def check_class_count(count, max_classes, counted, how):
    """One error line unless a task of `count` classes suits a checkpoint trained `max_classes`-way: `counted`
    states the count as the user gave it, `how` says how to give the classes."""
    if count < 2:
        raise UserError(f"{counted}: {how}, at least 2 classes")
    if count > max_classes:
        raise UserError(f"{counted} but the checkpoint classifies at most {max_classes} (it was trained "
                        f"{max_classes}-way): use at most {max_classes} classes, or a checkpoint trained with a "
                        "larger n_way")
