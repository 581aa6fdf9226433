"""Paths given by the user, refused as one line before any use: control characters (a NUL or a line break
cannot be a file name, and would split the launch plan or a log line), and names too long for the file
system (a component over NAME_MAX bytes, a path over PATH_MAX)."""
import unicodedata

from src.model_utils.errors import UserError

NAME_MAX = 255  # bytes of one path component on Linux file systems (ext4, xfs, tmpfs)
PATH_MAX = 4095  # bytes of a path the kernel takes, its terminating NUL aside


def checked_path(option, value):
    """`value` (a str) if it can name a file, else a UserError naming `option` and what is wrong."""
    text = str(value)
    if any(unicodedata.category(ch) == "Cc" for ch in text):
        raise UserError(f"{option} must not contain control characters (line breaks, tabs, NUL): "
                        "pass a plain path")
    try:
        encoded = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raise UserError(f"{option} is not a valid path (unencodable characters): pass a plain path") from None
    if len(encoded) > PATH_MAX:
        raise UserError(f"{option} is {len(encoded)} bytes long, over the {PATH_MAX} a path may have: pass a "
                        "shorter path")
    longest = max(encoded.split(b"/"), key=len)
    if len(longest) > NAME_MAX:
        raise UserError(f"{option} has a name of {len(longest)} bytes ({longest[:20].decode('utf-8', 'replace')}...), "
                        f"over the {NAME_MAX} a file name may have: pass a shorter path")
    return value


def path_type(option):
    """checked_path for `option` as an argparse `type`: its UserError passes argparse by as one line."""
    return lambda value: checked_path(option, value)
