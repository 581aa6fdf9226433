"""plot_curves.py: learning-curve PNGs from metrics.jsonl, resumed runs included."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

import plot_curves
from src.model_utils.errors import UserError

REPO = Path(__file__).resolve().parents[1]


def write_metrics(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def val(step, acc, train_seconds=1.0):
    return {"event": "val", "step": step, "acc": acc, "ci95": 0.01, "tasks": 10, "acc_per_step": [acc],
            "train_seconds": train_seconds, "cpu_seconds": 2 * train_seconds}


def test_writes_a_png(tmp_path):
    a = write_metrics(tmp_path / "a.jsonl", [val(100, 0.8, 60), val(200, 0.9, 120)])
    b = write_metrics(tmp_path / "b.jsonl", [val(100, 0.7)])
    out = tmp_path / "curves.png"
    plot_curves.main(["--metrics", str(a), "--metrics", str(b), "--label", "A", "--label", "B", "--output", str(out)])
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
    plot_curves.main(["--metrics", str(a), "--output", str(out), "--hours", "cpu"])  # replaces it
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_output_replaces_only_its_own_plots(tmp_path):
    """plot_curves.py --output photo.png, a PNG it did not write (even one with other text entries): exit 2,
    one error line, the image untouched."""
    from PIL import Image, PngImagePlugin

    metrics = write_metrics(tmp_path / "a.jsonl", [val(1, 0.5)])
    photo = tmp_path / "photo.png"
    text = PngImagePlugin.PngInfo()
    text.add_text("Software", "an image editor")
    Image.new("L", (4, 4)).save(photo, pnginfo=text)
    before = photo.read_bytes()
    proc = subprocess.run([sys.executable, "plot_curves.py", "--metrics", str(metrics), "--output", str(photo)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        f"error: --output {photo} is a file that is not a plot of plot_curves.py: it is left untouched; pass another --output"]
    assert photo.read_bytes() == before
    assert not plot_curves.is_earlier_plot(tmp_path / "absent.png")


@pytest.mark.parametrize("content, message", [
    (None, "not found"),
    ("{\"event\": \"val\"}\n", "line 1 is not a metrics record"),
    ("not json\n", "line 1 is not a metrics record"),
    (json.dumps({"event": "train", "step": 1, "acc": 0.5}) + "\n", "has no validation records yet"),
    (json.dumps({"event": "val", "step": 1}) + "\n", "line 1 is not a metrics record"),
    ("[1]\n", "line 1 is not a metrics record"),
    (b"\x89PNG\r\n\x1a\n\xff\xfe", "unreadable or not text"),
])
def test_bad_metrics_files(tmp_path, content, message):
    path = tmp_path / "metrics.jsonl"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(UserError, match=message):
        plot_curves.read_metrics(path)


def test_labels_must_match_metrics(tmp_path):
    a = write_metrics(tmp_path / "a.jsonl", [val(1, 0.5)])
    with pytest.raises(UserError, match="2 --label for 1 --metrics"):
        plot_curves.main(["--metrics", str(a), "--label", "x", "--label", "y", "--output", str(tmp_path / "c.png")])
    for output, message in ((tmp_path / "nowhere" / "c.png", "folder .*nowhere does not exist"), (tmp_path, "is a folder")):
        with pytest.raises(UserError, match=message):
            plot_curves.main(["--metrics", str(a), "--output", str(output)])


def test_without_matplotlib_says_what_to_install(tmp_path, monkeypatch):
    """matplotlib is a development requirement: without it, one error naming requirements-dev.txt."""
    a = write_metrics(tmp_path / "a.jsonl", [val(1, 0.5)])
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now raises ImportError
    with pytest.raises(UserError, match=r"needs matplotlib: pip install -r requirements-dev.txt"):
        plot_curves.main(["--metrics", str(a), "--output", str(tmp_path / "c.png")])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jsonl"]
