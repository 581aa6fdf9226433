"""Files that are either absent, the old version or the complete new one: never half-written."""
import os
from pathlib import Path

from src.errors import UserError


def write_atomic(path, write, fix="free some space or write somewhere else"):
    """Call `write(binary file)` on a temporary file beside `path`, fsync it, then rename it over `path`."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        raise UserError(f"cannot write {path} ({err.strerror or err}): {fix}") from None
    finally:
        tmp.unlink(missing_ok=True)
