"""One run per output folder: a run holds an exclusive lock on OUTPUT_DIR/.maml-run.lock for its whole life.

The lock is flock(2)'s, which the system releases when the process ends, however it ends (kill -9
included), so a dead run never blocks the next. The file holds the holder's pid, which the refusal of
a second run names. A run that ends normally removes the file (while still holding the lock).
"""
import fcntl
import os
from pathlib import Path

from src.model_utils.errors import UserError

LOCK_NAME = ".maml-run.lock"
_held = {}  # real path of a folder -> the descriptor of its lock file, held by this process


def _holder(fd):
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        text = ""
    return f"pid {text}" if text.isdigit() else "a process that has not yet written its pid"


def hold(folder):
    """Take the lock of `folder` for this process (again: nothing), or refuse with one line naming the holder."""
    key = os.path.realpath(folder)
    if key in _held:
        return
    path = Path(folder) / LOCK_NAME
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except OSError as err:
            raise UserError(f"cannot write to folder {folder} ({err.strerror or err}): make it writable or pass "
                            f"another --output_dir (a run locks it with {LOCK_NAME})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _holder(fd)
            os.close(fd)
            raise UserError(f"output_dir {folder} is in use by another run ({holder}): wait for it to end or pass "
                            "another --output_dir") from None
        try:  # the run that held it may have removed the file between our open and our lock
            current = os.stat(path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
        except OSError:
            current = False
        if current:
            break
        os.close(fd)
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _held[key] = fd


def release(folder):
    """Give up the lock of `folder` if this process holds it, removing its file."""
    key = os.path.realpath(folder)
    fd = _held.pop(key, None)
    if fd is None:
        return
    try:
        os.unlink(Path(key) / LOCK_NAME)
    except OSError:
        pass
    os.close(fd)


def check_free(folder):
    """Refuse `folder` now if another run holds it (hold, then release unless this process held it already)."""
    if os.path.realpath(folder) in _held:
        return
    hold(folder)
    release(folder)
