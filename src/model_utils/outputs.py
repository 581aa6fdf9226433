"""The one rule that guards every file the package writes: nothing a user has is overwritten.

An output file may replace only an earlier output of the same kind (an eval report, a plot, a log); a
checkpoint, a folder or any other file at that path, directly or through a symbolic link, is refused.
Every location is checked for writing before any work starts.
"""
import os
import tempfile
from pathlib import Path

from src.model_utils.errors import UserError

CHECKPOINT_SUFFIX = ".ckpt"


def check_writable(folder, fix):
    """Fail now, not after the work: create and delete a file in `folder`."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise UserError(f"cannot write to folder {folder} ({err.strerror or err}): {fix}") from None


def check_output_file(path, option, kind, replaceable, fix=None):
    """Refuse `path` as the output `option` unless it is new or an earlier output (`replaceable(path)`;
    None: no existing file is ever replaced); its folder must exist and be writable. `kind` names what
    the option writes; `fix` what to do instead (default: pass another `option`)."""
    path = Path(path)
    fix = fix or f"pass another {option}"
    try:
        target = path.resolve()
    except RuntimeError:  # how pathlib reports a symbolic-link loop
        raise UserError(f"{option} {path} is a symbolic-link loop: {fix}") from None
    if replaceable is None and (target.exists() or path.is_symlink()):
        raise UserError(f"{path} already exists: {fix} or move the file away")
    if target.is_dir():
        raise UserError(f"{option} {path} is a folder: {fix} (a file name)")
    if target.exists() or path.is_symlink():
        if target.suffix == CHECKPOINT_SUFFIX or not replaceable(target):
            what = "a checkpoint" if target.suffix == CHECKPOINT_SUFFIX else f"a file that is not {kind}"
            via = f" (through the link to {target})" if str(target) != os.path.abspath(path) else ""
            raise UserError(f"{option} {path} is {what}{via}: it is left untouched; {fix}")
    if not target.parent.is_dir():
        raise UserError(f"{option} {path}: folder {path.parent} does not exist; create it or {fix}")
    check_writable(target.parent, f"make it writable or {fix}")
    return path


def remove_if_empty(folder):
    try:
        Path(folder).rmdir()
    except OSError:
        pass
