"""Make a user's picture of a character look like an Omniglot original before it is resized for the network.

Omniglot's files are 105x105 black strokes on white, the character's ink box near the centre, its size
and stroke width within a narrow range (the constants below hold the originals' medians and ranges).
A photo, a scan or a screenshot differs in polarity, lighting, size, position and pen: here the
ink is found (the paper is the majority colour of the border; the background is flattened so that
uneven light and grey paper do not count as ink; Otsu's threshold then splits ink from paper),
cropped to its box, given Omniglot's stroke width and box size, and centred on a 105x105 white
canvas. An image that already is such a drawing (square, two-tone, light paper, ink box where Omniglot
has them) is returned untouched, so the Omniglot files convert exactly as the training
data did.
"""
import numpy as np
from PIL import Image, ImageFilter, ImageOps

SIDE = 105  # the originals' size
BOX_LONG_SIDE = 67  # the median longer side of an original's ink box
BOX_CENTRE = (51.5, 50.5)  # the median centre (x, y) of an original's ink box, Pillow's box coordinates
STROKE_WIDTH = 4.4  # the median of stroke_width() over the originals
# Every original's ink box has its centre within these bounds (on both axes, in a 105-pixel square), its
# stroke_width() in STROKE_RANGE and ink on less than MAX_BORDER_INK of its border pixels: a square two-tone drawing (at most
# MAX_GREYS of its pixels neither near black nor near white, which JPEG compression keeps and antialiased
# resizing or rotation does not) inside them is an original, or drawn like one.
CENTRE_RANGE = (18, 84)
STROKE_RANGE = (2.9, 11.5)
MAX_BORDER_INK = 0.25
MAX_GREYS = 0.001
MAX_WORKING_SIDE = 1024  # larger pictures are first reduced to this (a character needs far fewer pixels)
MAX_INK_LEVEL = 204  # ink is at least 20% darker than the (flattened) paper: paper noise is not ink
FINE = 2  # strokes are re-drawn at this multiple of the final resolution
PAPER, INK = 255, 0


def otsu_threshold(grey):
    """Otsu's threshold of an 8-bit array: the grey level t that best splits it into the pixels <= t and the
    others; -1 (nothing below) when it has only one tone."""
    counts = np.bincount(grey.ravel(), minlength=256).astype(np.float64)
    below = np.cumsum(counts)
    mass = np.cumsum(counts * np.arange(256))
    above = below[-1] - below
    split = (below > 0) & (above > 0)
    if not split.any():
        return -1
    between = np.zeros(256)
    between[split] = (mass[-1] * below[split] - mass[split] * below[-1]) ** 2 / (below[split] * above[split])
    return int(np.argmax(between))


def _border(array):
    return np.concatenate([array[0], array[-1], array[1:-1, 0], array[1:-1, -1]])


def is_omniglot_drawing(grey):
    """Whether an 8-bit image already is a drawing as Omniglot's files are (see the module's docstring)."""
    width, height = grey.size
    array = np.asarray(grey)
    if width != height or np.count_nonzero((array > 48) & (array < 207)) > MAX_GREYS * array.size:
        return False
    ink = array < 128
    box = Image.fromarray(ink).getbbox()
    if box is None or _border(ink).mean() > MAX_BORDER_INK:
        return False
    low, high = (bound * width / SIDE for bound in CENTRE_RANGE)
    if not all(low <= (box[i] + box[i + 2]) / 2 <= high for i in (0, 1)):
        return False
    thinnest, thickest = (bound * width / SIDE for bound in STROKE_RANGE)
    return thinnest <= stroke_width(Image.fromarray(ink).convert("L")) <= thickest


def stroke_width(mask):
    """The mean stroke width in pixels of a mode-'L' ink mask (ink 255): twice the ink area over its boundary
    pixels, which is the width of a long stroke of two pixels or more."""
    area = np.count_nonzero(np.asarray(mask))
    inner = np.count_nonzero(np.asarray(mask.filter(ImageFilter.MinFilter(3))))
    return 2.0 * area / max(area - inner, 1)


def _flat_paper(grey):
    """Light paper as 255 everywhere: the image divided by its background, which a max filter (taking out
    the dark strokes) on a reduced copy estimates."""
    factor = max(1, min(grey.size) // 32)
    small = grey.reduce(factor).filter(ImageFilter.MaxFilter(5)).filter(ImageFilter.GaussianBlur(1))
    background = np.asarray(small.resize(grey.size, Image.Resampling.BILINEAR), np.float32)
    flat = np.asarray(grey, np.float32) / np.maximum(background, 1.0) * 255.0
    return Image.fromarray(flat.clip(0, 255).astype(np.uint8))


def ink_mask(grey):
    """Mode-'L' mask of the ink (255) of an 8-bit picture of strokes on paper of either polarity."""
    array = np.asarray(grey)
    if np.median(_border(array)) <= otsu_threshold(array):  # dark paper: light strokes
        grey = ImageOps.invert(grey)
    flat = _flat_paper(grey).filter(ImageFilter.MedianFilter(3))
    level = min(otsu_threshold(np.asarray(flat)), MAX_INK_LEVEL)
    return Image.fromarray(((np.asarray(flat) <= level) * 255).astype(np.uint8))


def _restroked(mask, target):
    """The mask with its strokes grown or thinned (3x3 max/min filters) towards `target` pixels wide."""
    steps = round((target - stroke_width(mask)) / 2)
    for _ in range(abs(steps)):
        changed = mask.filter(ImageFilter.MaxFilter(3) if steps > 0 else ImageFilter.MinFilter(3))
        if changed.getbbox() is None:
            break  # never thin the ink away
        mask = changed
    return mask


def _resized(mask, size):
    """A binary mask resized (the ink covering at least half of a new pixel)."""
    coverage = np.asarray(mask.convert("F").resize(size, Image.Resampling.LANCZOS))
    return Image.fromarray(((coverage >= 127.5) * 255).astype(np.uint8))


def omniglot_like(img, redraw_originals=False):
    """An 8-bit image (paper 255, ink 0) drawn as Omniglot's originals are; an original comes back as it is,
    unless `redraw_originals` (the `redraw` setting: every image, the training data too, in one canonical size,
    place and stroke width)."""
    grey = img.convert("L")
    if not redraw_originals and is_omniglot_drawing(grey):
        return img
    if max(grey.size) > MAX_WORKING_SIDE:
        grey.thumbnail((MAX_WORKING_SIDE, MAX_WORKING_SIDE), Image.Resampling.LANCZOS)
    mask = ink_mask(grey)
    box = mask.getbbox()
    canvas = Image.new("L", (SIDE, SIDE), PAPER)
    if box is None:  # blank paper: nothing to centre
        return canvas
    # The strokes are given their width at FINE times the final scale, so that it moves in half pixels.
    scale = FINE * BOX_LONG_SIDE / max(box[2] - box[0], box[3] - box[1])
    crop = ImageOps.expand(mask.crop(box), 1 + round(FINE * STROKE_WIDTH / scale), 0)  # room to grow
    if stroke_width(crop) * scale < 2:  # a stroke that the resizing would lose: thicken it first
        crop = _restroked(crop, 2 / scale)
    fine = _restroked(_resized(crop, (round(crop.width * scale), round(crop.height * scale))), FINE * STROKE_WIDTH)
    fine = fine.crop(fine.getbbox())
    shrink = BOX_LONG_SIDE / max(fine.size)
    size = (max(1, round(fine.width * shrink)), max(1, round(fine.height * shrink)))
    ink = ImageOps.invert(_resized(fine, size))
    canvas.paste(ink, (round(BOX_CENTRE[0] - size[0] / 2), round(BOX_CENTRE[1] - size[1] / 2)))
    return canvas
