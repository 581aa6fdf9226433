"""export.py: the exported MINDIR, loaded with mindspore.load + nn.GraphCell, answers as predict.py does."""
import hashlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import mindspore as ms
from mindspore import nn

import export
import predict
from src.model_utils.errors import UserError
from src.data.image_folder import read_queries, read_support

REPO = Path(__file__).resolve().parents[1]
SHIPPED_5WAY = REPO / "checkpoints" / "omniglot_5way_1shot" / "best.ckpt"


pytestmark = pytest.mark.usefixtures("graph_mode_cpu")


def run_export(*args):
    return subprocess.run([sys.executable, str(REPO / "export.py"), *map(str, args)], capture_output=True,
                          text=True, timeout=600, cwd=REPO)


def export_shipped(folder, *args):
    proc = run_export("--ckpt", SHIPPED_5WAY, "--file_name", folder / "maml", *args)
    assert proc.returncode == 0, proc.stderr
    return folder / "maml.mindir", proc.stdout


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The shipped 5-way checkpoint exported with the default, variable numbers of images."""
    return export_shipped(tmp_path_factory.mktemp("export"))


def graph_cell(path):
    return nn.GraphCell(ms.load(str(path)))


def graph_predictions(graph, support, query):
    """predict.py's (file, class, probability) rows, computed by the exported graph."""
    names, x_spt, y_spt, _ = read_support(support, 28, 5)
    files, x_qry, _ = read_queries(query, 28)
    logits = graph(ms.Tensor(x_spt[None]), ms.Tensor(y_spt[None]), ms.Tensor(x_qry[None])).asnumpy()
    assert logits.shape == (1, len(files), 5)
    probs = predict.softmax(logits[0, :, :len(names)])
    return [(f.name, names[int(p.argmax())], float(p.max())) for f, p in zip(files, probs)]


def run_predict(support, query, *settings):
    return predict.main(["--ckpt", str(SHIPPED_5WAY), "--support_dir", str(support), "--query_dir", str(query),
                         *settings])


def assert_same_predictions(found, expected):
    assert [row[:2] for row in found] == [row[:2] for row in expected]
    # The same computation in both: float32 rounding at most (after the shipped checkpoint's first inner
    # step the later ones move the probabilities very little, so the rounding stays far below atol).
    np.testing.assert_allclose([row[2] for row in found], [row[2] for row in expected], rtol=0, atol=1e-7)


@pytest.mark.slow
def test_exported_graph_answers_as_predict_does(exported, demo):
    path, stdout = exported
    assert "inputs support images (1, N, 1, 28, 28) float32" in stdout
    assert "query images (1, M, 1, 28, 28) float32; output query logits (1, M, 5)" in stdout
    task, answers = demo
    expected = run_predict(task / "support", task / "query")
    found = graph_predictions(graph_cell(path), task / "support", task / "query")
    assert_same_predictions(found, expected)
    assert sum(answers[name] == cls for name, cls, _ in found) >= 18


@pytest.mark.slow
def test_exported_graph_takes_other_numbers_of_images(exported, demo, tmp_path):
    """Three of the five classes, two images of each (the second a copy), and ten queries."""
    task, _ = demo
    support, query = tmp_path / "support", tmp_path / "query"
    for folder in sorted((task / "support").iterdir())[:3]:
        shutil.copytree(folder, support / folder.name)
        image = next(folder.iterdir())
        shutil.copy(image, support / folder.name / f"copy{image.suffix}")
    query.mkdir()
    for image in sorted((task / "query").iterdir())[:10]:
        shutil.copy(image, query / image.name)
    assert_same_predictions(graph_predictions(graph_cell(exported[0]), support, query), run_predict(support, query))


@pytest.mark.slow
def test_export_with_fixed_numbers_of_images_and_other_settings(demo, tmp_path):
    """--support_images 5 --query_images 20 and a slower fine-tuning (each of its steps changes the answer):
    the demo's shapes only, and predict.py's answers under the same settings."""
    settings = ["--update_lr", "0.05", "--update_step_test", "3"]
    path, stdout = export_shipped(tmp_path, "--support_images", "5", "--query_images", "20", *settings)
    assert "support labels (1, 5) int32 in 0..4" in stdout and "output query logits (1, 20, 5)" in stdout
    assert "3 inner steps of size 0.05, then the query logits" in stdout
    task, _ = demo
    found = graph_predictions(graph_cell(path), task / "support", task / "query")
    assert_same_predictions(found, run_predict(task / "support", task / "query", *settings))
    x = ms.Tensor(np.zeros((1, 3, 1, 28, 28), np.float32))
    with pytest.raises((RuntimeError, ValueError)):
        graph_cell(path)(x, ms.Tensor(np.zeros((1, 3), np.int32)), ms.Tensor(np.zeros((1, 20, 1, 28, 28), np.float32)))


def test_export_keeps_an_existing_file(tmp_path):
    """python export.py --ckpt best.ckpt --file_name DIR/maml, where DIR/maml.mindir exists: exit 2, file untouched."""
    existing = tmp_path / "maml.mindir"
    existing.write_bytes(b"a user's model")
    digest = hashlib.sha256(existing.read_bytes()).hexdigest()
    proc = run_export("--ckpt", SHIPPED_5WAY, "--file_name", tmp_path / "maml")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"error: {existing} already exists: pass another --file_name or move the file away"]
    assert hashlib.sha256(existing.read_bytes()).hexdigest() == digest
    assert sorted(p.name for p in tmp_path.iterdir()) == ["maml.mindir"]


@pytest.mark.parametrize("args, message", [
    (["--file_format", "ONNX"], "file_format 'ONNX' is not supported: use MINDIR"),
    (["--support_images", "-1"], "--support_images takes a whole number >= 0"),
    (["--query_images", "many"], "--query_images takes a whole number >= 0 (0: any number), got 'many'"),
    (["--support_images", "\u00b2"], "--support_images takes a whole number >= 0"),
    (["--file_name", ""], "--file_name '' is not a file name: pass e.g. --file_name maml"),
    (["--file_name", "/"], "--file_name '/' is not a file name"),
    (["--file_name"], "argument --file_name: expected one argument"),
    (["--file_name", "absent/maml"], "folder absent does not exist; create it or pass another --file_name"),
    (["--no_such_key", "1"], "unknown option '--no_such_key'"),
    (["--file-name", "x"], "unknown option '--file-name': --help lists the options"),  # export's own too
])
def test_bad_export_options(args, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match=re.escape(message)):
        export.main(["--ckpt", str(SHIPPED_5WAY), *args])
    assert list(tmp_path.iterdir()) == []


def _logits_one_by_one(graph, x_spt, y_spt, x_qry):
    return np.concatenate([graph(ms.Tensor(x_spt[None]), ms.Tensor(y_spt[None]), ms.Tensor(x_qry[None, i:i + 1]))
                           .asnumpy() for i in range(len(x_qry))], axis=1)


@pytest.mark.slow
def test_exported_graph_answers_one_query_as_it_answers_them_all(exported, demo, tmp_path):
    """A deployment may send one image at a time: by default each query's logits are those it gets among the
    others. A graph exported with --transductive true (the control) normalises a lone query with itself."""
    task, _ = demo
    _, x_spt, y_spt, _ = read_support(task / "support", 28, 5)
    _, x_qry, _ = read_queries(task / "query", 28)
    x_qry = x_qry[:6]
    graph = graph_cell(exported[0])
    together = graph(ms.Tensor(x_spt[None]), ms.Tensor(y_spt[None]), ms.Tensor(x_qry[None])).asnumpy()
    np.testing.assert_allclose(_logits_one_by_one(graph, x_spt, y_spt, x_qry), together, rtol=1e-5, atol=1e-4)
    transductive = graph_cell(export_shipped(tmp_path, "--transductive", "true")[0])
    assert np.abs(_logits_one_by_one(transductive, x_spt, y_spt, x_qry) - together).max() > 1.0
