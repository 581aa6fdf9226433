"""The few-shot demo: src/data/demo_task.py writes a meta-test task as folders, predict.py classifies it."""
import csv
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from src.data import demo_task
from src.data.demo_task import make_demo_task
from src.data.image_folder import read_image, read_queries, read_support
from src.data.release import list_omniglot
from src.data.splits import split_class_ids
from src.model_utils.errors import UserError
from tests.tiny_checkpoints import save_tiny_checkpoint

REPO = Path(__file__).resolve().parents[1]
SHIPPED_5WAY = REPO / "checkpoints" / "omniglot_5way_1shot" / "best.ckpt"


def answers_file(task):
    with open(task / "answers.csv", newline="") as f:
        return {row["query"]: row["class"] for row in csv.DictReader(f)}


def test_demo_task_draws_unseen_classes(demo, omniglot_root):
    task, answers = demo
    classes = sorted(p.name for p in (task / "support").iterdir())
    assert len(classes) == 5 and all(len(list((task / "support" / c).iterdir())) == 1 for c in classes)
    assert sorted(p.name for p in (task / "query").iterdir()) == [f"q{i:03d}.png" for i in range(20)]
    assert answers_file(task) == answers and sorted(set(answers.values())) == classes
    assert all(list(answers.values()).count(c) == 4 for c in classes)
    # Every class comes from the finn split's meta-test part and the images are the 105x105 originals.
    listed = list_omniglot(omniglot_root)
    test_names = {f"{listed[i][0]['alphabet']}_{listed[i][0]['character']}"
                  for i in split_class_ids([entry for entry, _ in listed], "finn")["test"]}
    assert set(classes) <= test_names
    with Image.open(task / "query" / "q000.png") as img:
        assert img.size == (105, 105)


def test_demo_task_refuses_a_used_folder(demo, omniglot_root):
    task, _ = demo
    with pytest.raises(UserError, match="already exists and is not an empty folder"):
        make_demo_task(omniglot_root, task)


def test_demo_task_command_line(omniglot_root, tmp_path, capsys):
    demo_task.main(["--data_path", str(omniglot_root), "--output_path", str(tmp_path / "t"), "--n_way", "20",
                    "--k_spt", "2", "--k_qry", "1", "--seed", "3"])
    assert "wrote 20 support classes and 20 queries" in capsys.readouterr().out
    assert all(len(list(c.iterdir())) == 2 for c in (tmp_path / "t" / "support").iterdir())
    assert len(answers_file(tmp_path / "t")) == 20


def test_read_support_and_queries(demo):
    task, answers = demo
    names, x, y, skipped = read_support(task / "support", 28, 5)
    assert names == sorted(names) and x.shape == (5, 1, 28, 28) and x.dtype == np.float32
    assert y.tolist() == [0, 1, 2, 3, 4] and skipped == []
    # Omniglot is black ink on white: ink maps are mostly 0 with some 1.
    assert 0.0 <= x.min() and x.max() <= 1.0 and 0.02 < x.mean() < 0.3
    files, q, skipped = read_queries(task / "query", 28)
    assert skipped == []
    assert [f.name for f in files] == sorted(answers) and q.shape == (20, 1, 28, 28)


def copy_support(task, dst, classes=None, mutate=None):
    """A copy of the demo's support folder, optionally with fewer classes or a change applied."""
    src = task / "support"
    for folder in sorted(src.iterdir())[:classes]:
        (dst / folder.name).mkdir(parents=True)
        for image in folder.iterdir():
            (dst / folder.name / image.name).write_bytes(image.read_bytes())
    if mutate:
        mutate(dst)
    return dst


@pytest.mark.parametrize("mutate, words", [
    (lambda d: [p.unlink() for p in next(d.iterdir()).iterdir()], ["holds no image files", "put at least one example image"]),
    (lambda d: (d / "extra_class").mkdir() or (d / "extra_class" / "a.png").write_bytes(b""),
     ["has 6 class subfolders but the checkpoint classifies at most 5", "trained 5-way"]),
    (lambda d: (next(d.iterdir()) / "notes.png").write_text("not an image"), ["cannot read image", "notes.png", "not an image"]),
    (lambda d: [p.rename(d.parent / p.name) for p in list(d.iterdir())[1:]], ["has 1 class subfolders", "at least 2 classes"]),
])
def test_bad_support_folders(demo, tmp_path, mutate, words):
    support = copy_support(demo[0], tmp_path / "support", mutate=mutate)
    with pytest.raises(UserError) as err:
        read_support(support, 28, 5)
    for word in words:
        assert word in str(err.value)


def test_missing_and_empty_folders(tmp_path):
    with pytest.raises(UserError, match="no support folder given: pass --support_dir DIR"):
        read_support("", 28, 5)
    with pytest.raises(UserError, match="support folder .*absent not found: pass --support_dir an existing folder"):
        read_support(tmp_path / "absent", 28, 5)
    with pytest.raises(UserError, match="holds no image files: put"):
        read_queries(tmp_path, 28)
    (tmp_path / "class_a").mkdir()
    with pytest.raises(UserError, match=r"only the files directly inside are read, not its subfolders class_a"):
        read_queries(tmp_path, 28)


def test_non_images_and_loose_files_are_left_out(demo, tmp_path):
    support = copy_support(demo[0], tmp_path / "support")
    first_class = sorted(support.iterdir())[0]
    (support / "Thumbs.db").write_bytes(b"\x00" * 10)
    (support / "loose.png").write_bytes((demo[0] / "query" / "q000.png").read_bytes())
    (first_class / "desktop.ini").write_text("[x]")
    (first_class / ".hidden.png").write_text("not read")
    names, x, _, skipped = read_support(support, 28, 5)
    assert len(names) == 5 and x.shape[0] == 5
    assert sorted(p.name for p in skipped) == [".hidden.png", "Thumbs.db", "desktop.ini", "loose.png"]


def test_image_modes_become_the_training_ink_map(demo, tmp_path):
    """Transparent, 16-bit, palette and EXIF-rotated versions of a drawing give its ink map."""
    source = next((demo[0] / "support").iterdir())
    original = next(source.iterdir())
    expected = read_image(original, 28)
    with Image.open(original) as img:
        grey = img.convert("L")
    ink = np.asarray(grey) < 128
    rgba = np.zeros(grey.size[::-1] + (4,), np.uint8)
    rgba[..., 3] = np.where(ink, 255, 0)  # black strokes on a transparent background
    variants = {
        "transparent.png": Image.fromarray(rgba, "RGBA"),
        "grey16.png": Image.fromarray(np.asarray(grey, np.uint16) * 257),
        "palette.png": grey.convert("P"),
        "rgb.jpg": grey.convert("RGB"),
    }
    for name, img in variants.items():
        img.save(tmp_path / name)
        tolerance = 0.1 if name.endswith(".jpg") else 1e-2
        np.testing.assert_allclose(read_image(tmp_path / name, 28), expected, atol=tolerance, err_msg=name)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: shown turned 90 degrees clockwise
    grey.transpose(Image.Transpose.ROTATE_90).save(tmp_path / "rotated.jpg", exif=exif, quality=100)
    np.testing.assert_allclose(read_image(tmp_path / "rotated.jpg", 28), expected, atol=0.1)


def run_predict(*args):
    return subprocess.run([sys.executable, str(REPO / "predict.py"), *map(str, args)], capture_output=True,
                          text=True, timeout=600, cwd=REPO)


def predictions(stdout):
    """{query file: (class, probability)} from predict.py's standard output (nothing else is there)."""
    rows = [line.split("\t") for line in stdout.splitlines()]
    assert all(len(row) == 3 for row in rows), stdout
    return {row[0]: (row[1], float(row[2])) for row in rows}


@pytest.mark.slow
def test_predict_classifies_unseen_characters(demo):
    task, answers = demo
    proc = run_predict("--ckpt", SHIPPED_5WAY, "--support_dir", task / "support", "--query_dir", task / "query")
    assert proc.returncode == 0, proc.stderr
    assert "to 5 classes, 5 support images, in 10 inner steps of size 0.4" in proc.stderr
    found = predictions(proc.stdout)
    assert sorted(found) == sorted(answers)
    correct = [p for q, (c, p) in found.items() if c == answers[q]]
    assert len(correct) >= 18, f"{len(correct)}/20 correct"
    # Confident where right: the probabilities are those of a trained model, not a uniform guess.
    assert np.median(correct) > 0.8


@pytest.mark.slow
def test_predict_takes_any_image_size_and_fewer_classes(demo, tmp_path):
    """Three of the five classes, as 64x64 RGB JPEGs: the queries of those classes are still found."""
    task, answers = demo

    def to_jpeg(folder):
        for image in folder.rglob("*.png"):
            with Image.open(image) as img:
                img.convert("RGB").resize((64, 64)).save(image.with_suffix(".jpg"), quality=95)
            image.unlink()

    support = copy_support(task, tmp_path / "support", classes=3, mutate=to_jpeg)
    kept = {p.name for p in support.iterdir()}
    query = tmp_path / "query"
    query.mkdir()
    for name, cls in answers.items():
        if cls in kept:
            (query / name).write_bytes((task / "query" / name).read_bytes())
    proc = run_predict("--ckpt", SHIPPED_5WAY, "--support_dir", support, "--query_dir", query)
    assert proc.returncode == 0, proc.stderr
    found = predictions(proc.stdout)
    assert len(found) == 12 and {c for c, _ in found.values()} <= kept
    assert sum(found[q][0] == answers[q] for q in found) >= 11


@pytest.mark.slow
def test_predict_names_with_control_characters_stay_one_line_each(demo, tmp_path):
    """A class folder and a query named to forge result lines: each query is still exactly one line, its
    names escaped."""
    task, answers = demo

    def rename_first_class(d):
        sorted(d.iterdir())[0].rename(d / "Greek\nINJECTED\tx")

    support = copy_support(task, tmp_path / "support", mutate=rename_first_class)
    query = tmp_path / "query"
    query.mkdir()
    for i, name in enumerate(sorted(answers)[:5]):
        (query / (f"new\nline{i}.png" if i == 0 else name)).write_bytes((task / "query" / name).read_bytes())
    proc = run_predict("--ckpt", SHIPPED_5WAY, "--support_dir", support, "--query_dir", query)
    assert proc.returncode == 0, proc.stderr
    rows = [line.split("\t") for line in proc.stdout.splitlines()]
    assert len(rows) == 5 and all(len(row) == 3 for row in rows), proc.stdout
    assert sorted(row[0] for row in rows)[0] == "new\\nline0.png"
    assert {row[1] for row in rows} <= {"Greek\\nINJECTED\\tx", *(p.name for p in support.iterdir())}


@pytest.mark.slow
def test_predict_bad_input_is_one_line(demo, tmp_path):
    support = copy_support(demo[0], tmp_path / "support", mutate=lambda d: (next(d.iterdir()) / "x.png").write_text("?"))
    proc = run_predict("--ckpt", SHIPPED_5WAY, "--support_dir", support, "--query_dir", demo[0] / "query")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "cannot read image" in errors[0] and "x.png" in errors[0]



def _predict_alone(task, tmp_path, name, *settings):
    """predict.py's (class, probability) of the demo task's query `name` sent alone."""
    import predict

    folder = tmp_path / f"{name}{len(settings)}"
    folder.mkdir()
    shutil.copy(task / "query" / name, folder / name)
    [(_, cls, prob)] = predict.main(["--ckpt", str(SHIPPED_5WAY), "--support_dir", str(task / "support"),
                                     "--query_dir", str(folder), *settings])
    return cls, prob


@pytest.mark.slow
def test_predict_answers_one_image_as_it_answers_them_all(demo, tmp_path):
    """By default each query is classified on its own: alone it gets the class and probability it gets among
    all twenty. With --transductive true (the queries' own batch statistics) a query alone does not."""
    import predict

    task, answers = demo
    together = {name: (cls, prob) for name, cls, prob in predict.main(
        ["--ckpt", str(SHIPPED_5WAY), "--support_dir", str(task / "support"), "--query_dir", str(task / "query")])}
    names = sorted(answers)[::4]
    for name in names:
        cls, prob = _predict_alone(task, tmp_path, name)
        assert cls == together[name][0]
        assert prob == pytest.approx(together[name][1], abs=1e-5)
    moved = [abs(_predict_alone(task, tmp_path, name, "--transductive", "true")[1] - together[name][1])
             for name in names[:2]]
    assert max(moved) > 0.05


def test_a_redraw_checkpoint_reads_omniglot_files_as_pictures(demo, tmp_path):
    """A checkpoint trained with redraw: predict.py redraws every picture, Omniglot's own too, so an original and
    the same drawing moved onto a large canvas in light strokes on black get one answer. A checkpoint trained on
    the originals as they are reads an original as it is, so the two differ."""
    import predict

    task, _ = demo
    queries = tmp_path / "query"
    queries.mkdir()
    original = sorted((task / "query").iterdir())[0]
    shutil.copy(original, queries / "original.png")
    with Image.open(original) as img:
        canvas = Image.new("L", (300, 300), 255)
        canvas.paste(img.convert("L"), (170, 30))
    ImageOps.invert(canvas).save(queries / "moved.png")
    probability = {}
    for redraw in ("true", "false"):
        ckpt = save_tiny_checkpoint(tmp_path / f"redraw_{redraw}.ckpt", "--redraw", redraw)
        probability[redraw] = {name: prob for name, _, prob in predict.main(
            ["--ckpt", str(ckpt), "--support_dir", str(task / "support"), "--query_dir", str(queries)])}
    assert probability["true"]["original.png"] == probability["true"]["moved.png"]
    assert probability["false"]["original.png"] != probability["false"]["moved.png"]
