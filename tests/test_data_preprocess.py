"""src/data_preprocess.py on the real Omniglot zips: output contract, caching, layouts, bad input, download."""
import hashlib
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from src import data_preprocess
from src.data.decode import decode_all
from src.data.download import download_omniglot
from src.data.image_folder import read_image
from src.data.npy_cache import INDEX_NAME, NPY_NAME, REDRAWN_NAMES, is_up_to_date, load_omniglot
from src.data.release import detect_layout, fingerprint, list_sources, read_source
from src.data_preprocess import build_omniglot
from src.model_utils.errors import UserError
from tests.omniglot_fixtures import copy_zip, first_png, flip_member_byte, png_bytes, serve_directory

REPO = Path(__file__).resolve().parents[1]
ZIPS = ("images_background.zip", "images_evaluation.zip")


@pytest.fixture(scope="module")
def array(omniglot_npy_dir):
    return np.load(omniglot_npy_dir / NPY_NAME)


@pytest.fixture(scope="module")
def index(omniglot_npy_dir):
    return json.loads((omniglot_npy_dir / INDEX_NAME).read_text())


def run_cli(*args):
    return subprocess.run([sys.executable, "src/data_preprocess.py", *map(str, args)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)


def assert_one_line_error(result, *fragments):
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def assert_nothing_written(out):
    assert not out.exists() or list(out.iterdir()) == [], list(out.iterdir())


def root_with(tmp_path, omniglot_root, background=None, evaluation=None):
    """An Omniglot root in tmp whose zips are the given files, or links to the real ones."""
    raw = tmp_path / "root" / "raw"
    raw.mkdir(parents=True)
    for name, given in zip(ZIPS, (background, evaluation)):
        target = raw / name
        if given is None:
            target.symlink_to(omniglot_root / "raw" / name)
        else:
            shutil.move(given, target)
    return raw.parent


# ----------------------------------------------------------------------------- output contract


def test_array_shape_dtype_range(array):
    assert array.shape == (1623, 20, 28, 28)
    assert array.dtype == np.float16
    assert array.min() == 0.0 and array.max() == 1.0


def test_ink_is_one_background_zero(array):
    ink = array.astype(np.float32)
    assert ink.mean() < 0.3
    border = np.concatenate([ink[..., 0, :], ink[..., -1, :], ink[..., :, 0], ink[..., :, -1]], axis=-1)
    assert border.mean() < 0.02
    assert (ink.reshape(len(ink) * 20, -1).max(axis=1) > 0.5).all(), "some image holds no ink"


def test_images_follow_the_source_pngs(array, index, omniglot_root):
    """Class 0, drawer k must be the k-th PNG of the first class; LANCZOS roughly preserves ink mass."""
    first = index["classes"][0]
    prefix = f"images_{first['set']}/{first['alphabet']}/{first['character']}/"
    with zipfile.ZipFile(omniglot_root / "raw" / ZIPS[0]) as zf:
        members = sorted(n for n in zf.namelist() if n.startswith(prefix))
        ink = [1.0 - np.asarray(Image.open(io.BytesIO(zf.read(m))).convert("L"), np.float32) / 255
               for m in members]
    assert len(members) == 20
    for k, big in enumerate(ink):
        assert abs(array[0, k].astype(np.float32).mean() - big.mean()) < 0.01, members[k]


def test_index_lists_classes_in_canonical_order(index, omniglot_npy_dir):
    assert index["format_version"] == 1 and index["imgsz"] == 28 and index["resample"] == "lanczos"
    assert index["num_classes"] == 1623 and index["num_drawers"] == 20
    classes = index["classes"]
    sets = [c["set"] for c in classes]
    assert sets == ["background"] * 964 + ["evaluation"] * 659
    for set_name in ("background", "evaluation"):
        keys = [(c["alphabet"], c["character"]) for c in classes if c["set"] == set_name]
        assert keys == sorted(keys) and len(set(keys)) == len(keys)
    assert len({c["alphabet"] for c in classes if c["set"] == "background"}) == 30
    assert len({c["alphabet"] for c in classes if c["set"] == "evaluation"}) == 20
    assert index["source"]["layout"] == "raw"
    assert not list(omniglot_npy_dir.glob(".*"))  # no temporary file left (src/model_utils/atomic_file.py names them .*)


# ----------------------------------------------------------------------------- caching


@pytest.mark.slow
def test_rerun_is_noop_and_force_rebuilds_identically(omniglot_root, omniglot_npy_dir, array, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    for name in (NPY_NAME, INDEX_NAME):
        shutil.copy2(omniglot_npy_dir / name, out / name)
    before = (out / NPY_NAME).stat().st_mtime_ns
    messages = []
    started = time.monotonic()
    assert build_omniglot(omniglot_root, out, imgsz=28, log=messages.append) == out / NPY_NAME
    assert time.monotonic() - started < 2.0
    assert len(messages) == 1 and "up to date" in messages[0]
    assert (out / NPY_NAME).stat().st_mtime_ns == before

    messages.clear()
    build_omniglot(omniglot_root, out, imgsz=28, force=True, log=messages.append)
    assert (out / NPY_NAME).stat().st_mtime_ns != before
    assert any("decoded" in m for m in messages) and messages[-1].startswith("done: 1623 classes, 32460 images")
    assert np.array_equal(np.load(out / NPY_NAME), array), "rebuild is not deterministic"
    assert sorted(p.name for p in out.iterdir()) == [NPY_NAME, INDEX_NAME]


def test_redrawn_images_are_those_predict_reads_with_redraw(omniglot_root):
    """The redraw setting's training data, decoded by the worker processes, is each original file as predict.py
    reads it with redraw (two characters of each set)."""
    sources = [(name, container, classes[:2]) for name, container, classes in list_sources(omniglot_root, "raw")]
    redrawn = decode_all(sources, 28, 2, lambda message: None, redraw=True)
    refs = [(container, ref) for _, container, classes in sources for _, _, files in classes for ref in files]
    assert redrawn.shape == (4, 20, 28, 28) and len(refs) == 80
    for number, (container, ref) in enumerate(refs):
        expected = read_image(io.BytesIO(read_source(container, ref, ref)), 28, redraw=True)
        np.testing.assert_array_equal(redrawn[number // 20, number % 20].astype(np.float32), expected, err_msg=ref)


def test_redrawn_cache_is_built_beside_the_other(omniglot_root, omniglot_npy_dir, array, tmp_path, monkeypatch):
    """--redraw writes omniglot_redrawn.npy beside omniglot.npy, which it leaves untouched; each cache is up to
    date for its own setting only, an index written before the setting existed counting as the originals'. (The
    redrawing is the test above's: the whole release takes minutes.)"""
    out = tmp_path / "out"
    shutil.copytree(omniglot_npy_dir, out)
    before = (out / NPY_NAME).stat().st_mtime_ns
    asked = []
    monkeypatch.setattr(data_preprocess, "decode_all",
                        lambda sources, imgsz, workers, log, redraw: asked.append(redraw) or 1 - array)
    assert build_omniglot(omniglot_root, out, imgsz=28, log=lambda message: None, redraw=True) == out / REDRAWN_NAMES[0]
    assert asked == [True] and (out / NPY_NAME).stat().st_mtime_ns == before
    assert sorted(p.name for p in out.iterdir()) == sorted([NPY_NAME, INDEX_NAME, *REDRAWN_NAMES])
    source = fingerprint(omniglot_root, "raw")
    assert is_up_to_date(out, 28, source) and is_up_to_date(out, 28, source, redraw=True)
    (out / REDRAWN_NAMES[1]).write_text((out / INDEX_NAME).read_text())  # the originals' index under its name
    assert not is_up_to_date(out, 28, source, redraw=True)
    assert np.array_equal(load_omniglot(out).images, array)
    assert np.array_equal(load_omniglot(out, redraw=True).images, 1 - array)
    older = json.loads((out / INDEX_NAME).read_text())
    del older["redrawn"]
    (out / INDEX_NAME).write_text(json.dumps(older))
    assert is_up_to_date(out, 28, source)


def test_cache_is_invalidated_by_size_and_source_changes(omniglot_root, omniglot_npy_dir, tmp_path):
    source = fingerprint(omniglot_root, "raw")
    assert is_up_to_date(omniglot_npy_dir, 28, source)
    assert not is_up_to_date(omniglot_npy_dir, 32, source)

    copies = [shutil.copy2(omniglot_root / "raw" / name, tmp_path / name) for name in ZIPS]
    root = root_with(tmp_path, omniglot_root, *copies)
    assert is_up_to_date(omniglot_npy_dir, 28, fingerprint(root, "raw"))  # same size and mtime
    os.utime(root / "raw" / ZIPS[1], ns=(0, 0))
    assert not is_up_to_date(omniglot_npy_dir, 28, fingerprint(root, "raw"))

    out = tmp_path / "truncated_npy"
    shutil.copytree(omniglot_npy_dir, out)
    with open(out / NPY_NAME, "r+b") as f:
        f.truncate(1000)
    assert not is_up_to_date(out, 28, source)


@pytest.mark.parametrize("content, found", [
    (np.zeros((3, 20, 1, 28, 28), np.float32), r"it holds float32 \(3, 20, 1, 28, 28\)"),  # MAML-Pytorch's cache
    (b"not an array", "it is not a .npy file")])
def test_never_replaces_an_omniglot_npy_of_another_program(tmp_path, omniglot_root, content, found):
    """python src/data_preprocess.py --data_path ROOT, where ROOT/omniglot.npy is another program's
    -> exit 2, "error: ROOT/omniglot.npy was not written by this package (...): it is left untouched; ...",
    the file unchanged."""
    root = root_with(tmp_path, omniglot_root)
    theirs = root / NPY_NAME
    if isinstance(content, bytes):
        theirs.write_bytes(content)
    else:
        np.save(theirs, content)
    before = theirs.read_bytes()
    result = run_cli("--data_path", root)
    assert_one_line_error(result, f"{theirs} was not written by this package", "it is left untouched",
                          "pass --output_path another folder")
    assert re.search(found, result.stderr)
    assert theirs.read_bytes() == before and not (root / INDEX_NAME).exists()

def test_both_layouts_present_prefers_raw(tmp_path, omniglot_root):
    root = root_with(tmp_path, omniglot_root)
    for set_name in ("background", "evaluation"):
        (root / "processed" / f"images_{set_name}").mkdir(parents=True)
    assert detect_layout(root) == "raw"
    (root / "raw" / ZIPS[1]).unlink()
    assert detect_layout(root) == "processed"


@pytest.mark.slow
def test_processed_folder_layout_equals_raw(omniglot_root, array, index, tmp_path):
    root = tmp_path / "root"
    for name in ZIPS:
        with zipfile.ZipFile(omniglot_root / "raw" / name) as zf:
            zf.extractall(root / "processed")
    (root / "processed" / "images_background" / ".DS_Store").write_bytes(b"junk")  # must be ignored
    npy = build_omniglot(root, tmp_path / "out", imgsz=28, log=lambda _: None)
    assert np.array_equal(np.load(npy), array)
    built = json.loads((tmp_path / "out" / INDEX_NAME).read_text())
    assert built["classes"] == index["classes"]
    assert built["source"]["layout"] == "processed"
    assert built["source"]["images_background"]["files"] == 19281


# ----------------------------------------------------------------------------- bad input (CLI)


def test_missing_data_dir(tmp_path):
    result = run_cli("--data_path", tmp_path / "nope", "--output_path", tmp_path / "out")
    assert_one_line_error(result, "does not exist", "--data_path")
    assert_nothing_written(tmp_path / "out")


def test_no_layout(tmp_path):
    (tmp_path / "root" / "raw").mkdir(parents=True)
    result = run_cli("--data_path", tmp_path / "root", "--output_path", tmp_path / "out")
    assert_one_line_error(result, "raw/images_background.zip", "processed/images_evaluation/", "--download")
    assert_nothing_written(tmp_path / "out")


def test_broken_link_in_processed_folders(tmp_path):
    """data_preprocess.py --data_path ROOT where processed/ holds a link to a missing image: exit 2, one error
    naming the link, nothing written."""
    character = tmp_path / "root" / "processed" / "images_background" / "Alphabet" / "character01"
    character.mkdir(parents=True)
    (character / "broken.png").symlink_to(tmp_path / "missing.png")
    (tmp_path / "root" / "processed" / "images_evaluation").mkdir()
    result = run_cli("--data_path", tmp_path / "root", "--output_path", tmp_path / "out")
    assert_one_line_error(result, f"cannot read {character / 'broken.png'} (No such file or directory): repair or remove it")
    assert_nothing_written(tmp_path / "out")


def test_truncated_zip(tmp_path, omniglot_root):
    data = (omniglot_root / "raw" / ZIPS[0]).read_bytes()
    (tmp_path / "bad.zip").write_bytes(data[: len(data) // 2])
    root = root_with(tmp_path, omniglot_root, background=tmp_path / "bad.zip")
    result = run_cli("--data_path", root, "--output_path", tmp_path / "out")
    assert_one_line_error(result, "images_background.zip is not a readable zip")
    assert_nothing_written(tmp_path / "out")


@pytest.mark.parametrize("damage, verb, words", [
    ("flipped byte", "cannot read", "CRC"),  # the zip's checksum of the member fails
    ("not a PNG", "cannot decode", "not an image"),  # intact zip, garbage image
], ids=["crc_error", "garbage_png"])
def test_damaged_member(tmp_path, omniglot_root, damage, verb, words):
    source = omniglot_root / "raw" / ZIPS[0]
    member = first_png(source)
    if damage == "not a PNG":
        bad = copy_zip(source, tmp_path / "bad.zip", replace={member: b"this is not a PNG"})
    else:
        bad = copy_zip(source, tmp_path / "bad.zip")
        flip_member_byte(bad, member)
    root = root_with(tmp_path, omniglot_root, background=bad)
    result = run_cli("--data_path", root, "--output_path", tmp_path / "out")
    assert_one_line_error(result, f"{verb} {member}", words)
    assert_nothing_written(tmp_path / "out")


def test_missing_drawer(tmp_path, omniglot_root):
    source = omniglot_root / "raw" / ZIPS[1]
    member = first_png(source)
    bad = copy_zip(source, tmp_path / "bad.zip", drop={member})
    root = root_with(tmp_path, omniglot_root, evaluation=bad)
    result = run_cli("--data_path", root, "--output_path", tmp_path / "out")
    assert_one_line_error(result, f"character {member.rsplit('/', 1)[0]} has 19 drawings, expected 20")
    assert_nothing_written(tmp_path / "out")


def test_wrong_image_size(tmp_path, omniglot_root):
    source = omniglot_root / "raw" / ZIPS[0]
    member = first_png(source)
    bad = copy_zip(source, tmp_path / "bad.zip", replace={member: png_bytes((50, 50))})
    root = root_with(tmp_path, omniglot_root, background=bad)
    result = run_cli("--data_path", root, "--output_path", tmp_path / "out")
    assert_one_line_error(result, member, "is 50x50, expected 105x105")
    assert_nothing_written(tmp_path / "out")


def test_decompression_bomb_png(tmp_path, omniglot_root):
    """data_preprocess.py on an images_background.zip whose first drawing is a 20000x20000 PNG (a few KB packed,
    400 megapixels unpacked): exit 2, one line naming the member, nothing written, no memory spent on it."""
    source = omniglot_root / "raw" / ZIPS[0]
    member = first_png(source)
    bad = copy_zip(source, tmp_path / "bad.zip", replace={member: png_bytes((20000, 20000))})
    root = root_with(tmp_path, omniglot_root, background=bad)
    before = hashlib.sha256((root / "raw" / ZIPS[0]).read_bytes()).hexdigest()
    result = run_cli("--data_path", root, "--output_path", tmp_path / "out")
    assert_one_line_error(result, f"cannot decode {member} in", "decompression bomb")
    assert_nothing_written(tmp_path / "out")
    assert hashlib.sha256((root / "raw" / ZIPS[0]).read_bytes()).hexdigest() == before


def _children(pid):
    """The pids of the live child processes of `pid` (Linux /proc)."""
    try:
        return {int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}
    except OSError:
        return set()


def _alive(pid):
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")
def test_workers_die_with_their_parent_after_kill_9(tmp_path, omniglot_root):
    """data_preprocess.py --workers 2, killed with kill -9 while its workers decode: the workers and the resource
    tracker end within seconds (none is left blocked), and no omniglot.npy is written."""
    proc = subprocess.Popen([sys.executable, "src/data_preprocess.py", "--data_path", str(omniglot_root),
                             "--output_path", str(tmp_path / "out"), "--workers", "2", "--force"],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline, children = time.time() + 120, set()
    while len(children) < 3 and time.time() < deadline and proc.poll() is None:  # 2 workers and the tracker
        children |= _children(proc.pid)
        time.sleep(0.05)
    assert len(children) >= 2, "the workers did not start"
    proc.kill()
    proc.wait()
    deadline = time.time() + 30
    while any(map(_alive, children)) and time.time() < deadline:
        time.sleep(0.2)
    assert not any(map(_alive, children)), [pid for pid in children if _alive(pid)]
    assert not (tmp_path / "out" / NPY_NAME).exists()


def test_output_not_writable(tmp_path, omniglot_root):
    (tmp_path / "a_file").write_text("")
    result = run_cli("--data_path", omniglot_root, "--output_path", tmp_path / "a_file" / "out")
    assert_one_line_error(result, "cannot write to output folder", "--output_path")
    assert (tmp_path / "a_file").read_text() == ""


@pytest.mark.parametrize("flag", ["--imgsz", "--workers"])
def test_nonpositive_sizes(tmp_path, omniglot_root, flag):
    result = run_cli("--data_path", omniglot_root, "--output_path", tmp_path / "out", flag, "0")
    assert_one_line_error(result, flag)
    assert_nothing_written(tmp_path / "out")


def test_user_error_from_api(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        build_omniglot(tmp_path / "nope")


# ----------------------------------------------------------------------------- download


@pytest.fixture(scope="module")
def sums(omniglot_root, tmp_path_factory):
    """A SHA256SUMS file of the zips in omniglot_root/raw/, whichever copy of Omniglot they are."""
    path = tmp_path_factory.mktemp("sums") / "SHA256SUMS"
    path.write_text("".join(f"{sha256(omniglot_root / 'raw' / name)}  {name}\n" for name in ZIPS))
    return path


@pytest.fixture(scope="module")
def zip_server(omniglot_root, tmp_path_factory):
    served = tmp_path_factory.mktemp("served")
    for name in ZIPS:
        (served / name).symlink_to(omniglot_root / "raw" / name)
    with serve_directory(served) as url:
        yield url


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def closed_port_url(scheme):
    """A URL on a local port that nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"{scheme}://127.0.0.1:{port}/"


@pytest.mark.slow
def test_download_verifies_and_builds(zip_server, sums, omniglot_root, array, tmp_path):
    args = ("--data_path", tmp_path / "data", "--output_path", tmp_path / "out",
            "--download", "--download_url", zip_server, "--checksums", sums)
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    for name in ZIPS:
        assert sha256(tmp_path / "data" / "raw" / name) == sha256(omniglot_root / "raw" / name)
    assert sorted(p.name for p in (tmp_path / "data" / "raw").iterdir()) == list(ZIPS)
    assert np.array_equal(np.load(tmp_path / "out" / NPY_NAME), array)

    again = run_cli(*args)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("already present and verified") == 2 and "up to date" in again.stdout


def test_download_checksum_mismatch(tmp_path):
    """A served images_background.zip that is not the official file fails the official MD5 (no --checksums)."""
    served = tmp_path / "served"
    served.mkdir()
    (served / ZIPS[0]).write_bytes(b"not the official Omniglot zip")
    with serve_directory(served) as url:
        result = run_cli("--data_path", tmp_path / "data", "--download", "--download_url", url)
    assert_one_line_error(result, "checksum mismatch for images_background.zip",
                          "expected md5 68d2efa1b9178cc56df9314c21c6e718")
    assert not (tmp_path / "data").exists(), "the downloaded file or the folders created for it were left behind"


def test_download_http_error(zip_server, tmp_path):
    result = run_cli("--data_path", tmp_path / "data", "--download", "--download_url", zip_server + "missing/")
    assert_one_line_error(result, "download failed", zip_server + "missing/images_background.zip", "404",
                          "by hand into")
    assert not (tmp_path / "data").exists()


def test_download_connection_refused(tmp_path):
    url = closed_port_url("http")
    result = run_cli("--data_path", tmp_path / "new" / "data", "--download", "--download_url", url)
    assert_one_line_error(result, "download failed", url + "images_background.zip", "check the connection")
    assert list(tmp_path.iterdir()) == [], "new/data/raw/, all created by the command, must be removed again"


def test_download_url_that_is_not_a_url(tmp_path):
    result = run_cli("--data_path", tmp_path / "data", "--download", "--download_url", "notaurl/")
    assert_one_line_error(result, "download failed", "notaurl/images_background.zip", "unknown url type")
    assert not (tmp_path / "data").exists()


def test_checksum_file_without_entries(tmp_path, zip_server):
    (tmp_path / "SUMS").write_text("abc  other.zip\n")
    result = run_cli("--data_path", tmp_path / "data", "--download", "--download_url", zip_server,
                     "--checksums", tmp_path / "SUMS")
    assert_one_line_error(result, "has no entry for images_background.zip, images_evaluation.zip")


def test_failed_download_keeps_the_users_folders_and_files(tmp_path, omniglot_root, sums):
    """`--download --download_url ftp://...` (unreachable): exit 2, one line; the raw/ folder it
    created is removed, the user's data folder and the verified zip already in raw/ are kept."""
    data = tmp_path / "data"
    data.mkdir()
    url = closed_port_url("ftp")
    result = run_cli("--data_path", data, "--download", "--download_url", url)
    assert_one_line_error(result, "download failed", url + "images_background.zip", "check the connection")
    assert data.is_dir() and list(data.iterdir()) == [], "raw/ (created by the command) was left behind"

    root = root_with(tmp_path, omniglot_root)
    (root / "raw" / ZIPS[1]).unlink()
    result = run_cli("--data_path", root, "--download", "--download_url", url,
                     "--checksums", sums)
    assert_one_line_error(result, "download failed", url + "images_evaluation.zip")
    assert [p.name for p in (root / "raw").iterdir()] == [ZIPS[0]]


@pytest.mark.parametrize("name", ZIPS)
def test_download_never_replaces_a_different_zip(zip_server, sums, tmp_path, name):
    """An existing raw/NAME that fails the checksum is the user's: `--download` refuses it (exit 2, one
    line naming it and the fix) before downloading anything, and leaves it byte for byte as it was."""
    raw = tmp_path / "data" / "raw"
    raw.mkdir(parents=True)
    (raw / name).write_bytes(b"the user's own " + name.encode())
    result = run_cli("--data_path", tmp_path / "data", "--output_path", tmp_path / "out", "--download",
                     "--download_url", zip_server, "--checksums", sums)
    assert_one_line_error(result, f"{raw / name} already exists and does not match the expected sha256",
                          "never replaces", "move it away", "drop --download to use it as is")
    assert (raw / name).read_bytes() == b"the user's own " + name.encode()
    assert [p.name for p in raw.iterdir()] == [name], "something was downloaded before the refusal"
    assert "downloading" not in result.stdout
    assert_nothing_written(tmp_path / "out")


def test_download_never_replaces_a_link(zip_server, sums, tmp_path):
    raw = tmp_path / "data" / "raw"
    raw.mkdir(parents=True)
    (raw / ZIPS[1]).symlink_to(tmp_path / "elsewhere.zip")  # the user's link, its target not there (yet)
    result = run_cli("--data_path", tmp_path / "data", "--output_path", tmp_path / "out", "--download",
                     "--download_url", zip_server, "--checksums", sums)
    assert_one_line_error(result, f"{raw / ZIPS[1]} already exists and is not a file", "move it away")
    assert os.readlink(raw / ZIPS[1]) == str(tmp_path / "elsewhere.zip")
    assert [p.name for p in raw.iterdir()] == [ZIPS[1]] and not (tmp_path / "elsewhere.zip").exists()


def test_download_keeps_verified_zips_and_fetches_nothing(tmp_path, omniglot_root, sums):
    root = root_with(tmp_path, omniglot_root)
    messages = []
    download_omniglot(root, closed_port_url("http"), sums, log=messages.append)
    assert messages == [f"{root / 'raw' / name} already present and verified (sha256)" for name in ZIPS]
    assert sorted(p.name for p in (root / "raw").iterdir()) == list(ZIPS)
