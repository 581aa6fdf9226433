"""Files and folders that are either absent, the old version or the complete new one: never half-written.

Every output of the package (checkpoints, reports, omniglot.npy, downloads, the demo task, plots)
is written under a temporary name beside its destination, `.NAME.maml-tmp-PID.SUFFIX`, and renamed
over it only once complete. A process killed mid-write leaves such a temporary behind; the next
run in that folder removes it (`remove_stale_temporaries`) once its process is gone.
"""
import contextlib
import os
import re
import shutil
from pathlib import Path

from src.model_utils.errors import UserError

# `.maml_step0000010.maml-tmp-123.ckpt`, `.omniglot.maml-tmp-123.npy`, `.task.maml-tmp-123`; MindSpore writes
# a checkpoint first as `.NAME.maml-tmp-123.tmp`. The package's own marker keeps a user's files out of it.
_TEMPORARY = re.compile(r"^\..+\.maml-tmp-(\d+)(\.\w+)?$")


def temporary_path(path):
    """The temporary name beside `path` that this process writes `path` under."""
    path = Path(path)
    return path.with_name(f".{path.stem}.maml-tmp-{os.getpid()}{path.suffix}")


def _remove(path):
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def replacing(path, fix="free some space or write somewhere else"):
    """Yield a temporary path beside `path`; when the block succeeds it is renamed over `path`.

    On any failure the temporary is removed and `path` keeps its previous content; an OSError
    (permissions, disk full) becomes a one-line UserError naming `path`, followed by `fix`.
    A folder may replace only an absent or empty folder.
    """
    path = Path(path)
    tmp = temporary_path(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as err:
        raise UserError(f"cannot write {path} ({err.strerror or err}): {fix}; "
                        f"its previous content, if any, is unchanged") from None
    finally:
        if tmp.exists() or tmp.is_symlink():
            _remove(tmp)


def write_atomic(path, write, fix="free some space or write somewhere else"):
    """Call `write(binary file)` on a temporary file beside `path`, fsync it, then rename it over `path`."""
    with replacing(path, fix) as tmp:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())


def _alive(pid):
    if pid == os.getpid():
        return False  # this process writes nothing before it calls this
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:
        return True  # another user's process
    return True


def remove_stale_temporaries(folder):
    """Remove the temporaries that processes no longer running left in `folder` (killed mid-write)."""
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return []
    removed = []
    for entry in entries:
        match = _TEMPORARY.match(entry.name)
        if match and not _alive(int(match.group(1))):
            try:
                _remove(entry)
            except OSError:  # a read-only folder: the temporary stays, and harms nothing
                continue
            removed.append(entry)
    return removed
