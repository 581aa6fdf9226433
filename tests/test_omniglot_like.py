"""src/data/omniglot_like.py through predict.py's reader: Omniglot's own files convert exactly as the training data
did, and a drawing that is moved, inverted, enlarged or photographed on grey paper comes out as the same
character, where resizing the whole picture loses it."""
import io

import numpy as np
import pytest
from PIL import Image, ImageOps

from src.data.image_folder import read_image
from src.data.npy_cache import load_omniglot
from src.data.omniglot_like import otsu_threshold
from src.data.release import list_omniglot, read_source


def _png(img, fmt="PNG", **options):
    buf = io.BytesIO()
    img.save(buf, format=fmt, **options)
    buf.seek(0)
    return buf


def _originals(root, step, offset=0):
    """(row, drawer, the original file's bytes) of every `step`-th Omniglot image, both sets."""
    for row, (_, drawings) in enumerate(list_omniglot(root)):
        for drawer, (container, ref, where) in enumerate(drawings):
            if (row * len(drawings) + drawer) % step == offset:
                yield row, drawer, read_source(container, ref, where)


def _check_unchanged(omniglot_root, omniglot_npy_dir, step):
    data = load_omniglot(omniglot_npy_dir)
    checked = 0
    for row, drawer, data_bytes in _originals(omniglot_root, step):
        np.testing.assert_array_equal(read_image(io.BytesIO(data_bytes), data.imgsz),
                                      data.images[row, drawer].astype(np.float32), err_msg=f"class {row} drawer {drawer}")
        checked += 1
    return checked


def test_omniglot_files_read_as_the_training_data(omniglot_root, omniglot_npy_dir):
    """A sample of the originals of both sets, bit for bit: the shipped figures stand for predict.py's input."""
    assert _check_unchanged(omniglot_root, omniglot_npy_dir, 37) > 800


@pytest.mark.slow
def test_every_omniglot_file_reads_as_the_training_data(omniglot_root, omniglot_npy_dir):
    assert _check_unchanged(omniglot_root, omniglot_npy_dir, 1) == 32460


@pytest.fixture(scope="module")
def drawings(omniglot_root):
    """Three original drawings (8-bit, black on white, 105x105)."""
    picked = []
    for _, _, data in _originals(omniglot_root, 10007, 123):
        with Image.open(io.BytesIO(data)) as img:
            picked.append(img.convert("L"))
    return picked[:3]


def _on_canvas(img, size, at, paper=255):
    canvas = Image.new("L", (size, size), paper)
    canvas.paste(img, at)
    return canvas


def _similarity(a, b):
    """Correlation of two ink maps: 1 for the same drawing in the same place."""
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def test_place_and_polarity_do_not_matter(drawings):
    """The same drawing in two corners of a large canvas, once as light strokes on black, reads the same."""
    for img in drawings:
        top_left = read_image(_png(_on_canvas(img, 300, (5, 10))), 28)
        bottom_right = read_image(_png(ImageOps.invert(_on_canvas(img, 300, (190, 170)))), 28)
        np.testing.assert_array_equal(top_left, bottom_right)


def test_redraw_reads_an_original_as_the_same_drawing_anywhere(drawings):
    """With the redraw setting an Omniglot file is redrawn as a user's picture is: it reads exactly as the drawing
    moved onto a large canvas in light strokes on black. Without it, it reads as it is (the training data)."""
    for img in drawings:
        redrawn = read_image(_png(img), 28, redraw=True)
        np.testing.assert_array_equal(redrawn, read_image(_png(ImageOps.invert(_on_canvas(img, 300, (170, 30)))), 28))
        assert np.abs(redrawn - read_image(_png(img), 28)).max() > 0.5


def test_a_moved_enlarged_or_photographed_drawing_stays_the_character(drawings):
    """Each changed drawing is much closer to its own character as predict.py reads it than to the others."""
    clean = [read_image(_png(_on_canvas(img, 200, (50, 50))), 28) for img in drawings]  # centred and sized
    rng = np.random.default_rng(0)
    for index, img in enumerate(drawings):
        ramp = np.linspace(190, 120, img.width)[None, :]
        ink = np.asarray(img) < 128
        photo = np.where(ink, 50.0, ramp) + rng.normal(0, 12, ink.shape)
        changed = {
            "offcentre": _png(_on_canvas(img, 300, (180, 20))),
            "enlarged": _png(img.resize((300, 300), Image.Resampling.LANCZOS)),
            "grey paper": _png(Image.fromarray(photo.clip(0, 255).astype(np.uint8)), "JPEG", quality=60),
            "light on dark": _png(ImageOps.invert(img.resize((80, 80), Image.Resampling.BICUBIC))),
        }
        for name, source in changed.items():
            got = read_image(source, 28)
            scores = [_similarity(got, other) for other in clean]
            assert scores[index] > 0.8 and scores[index] == max(scores), (name, scores)


def test_blank_paper_is_no_ink():
    """A photo of empty grey paper has no character: nothing is invented from its noise."""
    rng = np.random.default_rng(1)
    paper = Image.fromarray((170 + rng.normal(0, 10, (200, 260))).clip(0, 255).astype(np.uint8))
    assert read_image(_png(Image.new("L", (64, 64), 255)), 28).max() == 0
    assert read_image(_png(paper, "JPEG", quality=70), 28).mean() < 0.05


def test_otsu_splits_two_tones():
    values = np.array([[30] * 10 + [200] * 30], np.uint8)
    assert 30 <= otsu_threshold(values) < 200
    assert otsu_threshold(np.full((3, 3), 255, np.uint8)) == -1
