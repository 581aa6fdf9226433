"""demo.py, the interactive few-shot demo: canvases become the network's input, bad input is refused, and the
running app, driven by gradio_client, classifies a query drawn from Omniglot among two classes."""
import math
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from src.data.drawn_task import drawn_task
from src.data.image_folder import image_to_ink_map, read_image
from src.model_utils.errors import UserError
from src.model_utils.launch_plan import free_port

REPO = Path(__file__).resolve().parents[1]


def canvas_drawing(path):
    """An Omniglot file as a drawing canvas holds it: RGBA, black strokes on transparent paper."""
    with Image.open(path) as img:
        ink = np.asarray(img.convert("L")) < 128
    rgba = np.zeros(ink.shape + (4,), np.uint8)
    rgba[ink, 3] = 255
    return rgba


def support_files(task, classes):
    return [next((task / "support" / name).iterdir()) for name in classes]


def test_canvas_drawings_become_the_ink_maps_of_the_training_data(demo):
    task, _ = demo
    path = support_files(task, sorted(p.name for p in (task / "support").iterdir()))[0]
    expected = read_image(path, 28)
    assert expected.max() == 1.0 and expected.min() == 0.0
    np.testing.assert_array_equal(image_to_ink_map(canvas_drawing(path), 28), expected)
    on_white = canvas_drawing(path)[..., 3:].repeat(3, axis=-1) ^ 255  # black strokes on white, RGB
    np.testing.assert_array_equal(image_to_ink_map(on_white, 28), expected)
    np.testing.assert_array_equal(image_to_ink_map(Image.fromarray(on_white), 28), expected)


def test_drawn_task_keeps_the_named_drawings_in_order(demo):
    task, _ = demo
    classes = sorted(p.name for p in (task / "support").iterdir())[:3]
    files = support_files(task, classes)
    names = [" b ", "", "a", ""]  # an empty slot between, names stripped
    images = [canvas_drawing(files[0]), None, canvas_drawing(files[1]), np.zeros((50, 50, 4), np.uint8)]
    names_out, x_spt, y_spt, x_qry = drawn_task(names, images, canvas_drawing(files[2]), 28, 5)
    assert names_out == ["b", "a"] and y_spt.tolist() == [0, 1]
    assert x_spt.shape == (2, 1, 28, 28) and x_qry.shape == (1, 1, 28, 28)
    np.testing.assert_array_equal(x_spt[1, 0], read_image(files[1], 28))
    np.testing.assert_array_equal(x_qry[0, 0], read_image(files[2], 28))


WHITE = np.full((60, 60, 3), 255, np.uint8)


@pytest.mark.parametrize("names, drawn, query, message", [
    (["", "", ""], [False, False, False], True, "no classes drawn"),
    (["a", "", ""], [True, False, False], True, "1 class drawn"),
    (["a", "b", ""], [True, False, False], True, "class 'b' has no drawing"),
    (["a", "", "c"], [True, True, True], True, "the drawing of class 2 has no name"),
    (["a", "a", ""], [True, True, False], True, "two classes are named 'a'"),
    (["a", "b", "c"], [True, True, True], True, "3 classes drawn but the checkpoint classifies at most 2"),
    (["a", "b", ""], [True, True, False], False, "no query drawn"),
])
def test_drawn_task_refuses_what_cannot_be_classified(demo, names, drawn, query, message):
    task, _ = demo
    drawing = canvas_drawing(support_files(task, sorted(p.name for p in (task / "support").iterdir()))[0])
    images = [drawing if d else WHITE for d in drawn]  # a blank canvas is no drawing
    with pytest.raises(UserError, match=message):
        drawn_task(names, images, drawing if query else None, 28, 2)


def test_demo_refuses_a_missing_checkpoint_and_transductive(tmp_path):
    import demo

    with pytest.raises(UserError, match="not found"):
        demo.main(["--ckpt", str(tmp_path / "none.ckpt")])
    with pytest.raises(UserError, match="--transductive true"):
        demo.main(["--transductive", "true"])


def wait_until_served(url, proc, log, timeout=240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"demo.py exited with {proc.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"demo.py did not serve {url} within {timeout} s:\n{log.read_text()}")


@pytest.fixture(scope="module")
def running_demo(tmp_path_factory):
    """(URL, port) of demo.py serving the shipped 5-way 1-shot checkpoint on a free local port; killed afterwards."""
    tmp_path = tmp_path_factory.mktemp("running_demo")
    port, log = free_port(), tmp_path / "demo.log"
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", PYTHONUNBUFFERED="1")
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, str(REPO / "demo.py"), "--port", str(port)], cwd=tmp_path,
                                env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_until_served(url, proc, log)
        yield url, port
    finally:
        proc.kill()
        proc.wait(timeout=30)


@pytest.mark.slow
def test_the_running_demo_classifies_a_drawn_query(running_demo, demo, tmp_path):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    task, answers = demo
    classes = sorted(set(answers.values()))[:2]
    drawings = []
    for i, path in enumerate(support_files(task, classes) + [task / "query" / q for q in sorted(answers)]):
        drawings.append(tmp_path / f"canvas{i}.png")
        Image.fromarray(canvas_drawing(path)).save(drawings[-1])

    def canvas(path):
        return {"background": None, "layers": [handle_file(str(path))], "composite": handle_file(str(path))}

    client = Client(running_demo[0], verbose=False, httpx_kwargs={"timeout": 300})
    empty = ["", "", ""], [None, None, None]  # the page's other three class slots, left blank
    queries = {q: drawing for q, drawing in zip(sorted(answers), drawings[2:]) if answers[q] in classes}
    assert sorted(answers[q] for q in queries) == sorted(classes * 4)
    for q, drawing in queries.items():
        result = client.predict(*classes, *empty[0], canvas(drawings[0]), canvas(drawings[1]), *empty[1],
                                canvas(drawing), api_name="/classify")
        probabilities = {c["label"]: c["confidence"] for c in result["confidences"]}
        assert result["label"] == answers[q] and sorted(probabilities) == sorted(classes)
        assert math.isclose(sum(probabilities.values()), 1.0, abs_tol=1e-5)
    with pytest.raises(AppError, match=f"class '{classes[1]}' has no drawing"):
        client.predict(*classes, *empty[0], canvas(drawings[0]), None, *empty[1], canvas(drawings[2]),
                       api_name="/classify")


@pytest.mark.slow
def test_demo_refuses_a_port_in_use(running_demo):
    import demo

    with pytest.raises(UserError, match=f"cannot serve on 127.0.0.1:{running_demo[1]}: the port is taken"):
        demo.main(["--port", str(running_demo[1])])
