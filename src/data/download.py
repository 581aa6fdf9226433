"""Fetch the Omniglot zips into DATA/raw/, verified against checksums (the official MD5s, or a SHA256SUMS file).

A zip already there must pass the same check and is never replaced: anything else at that name is refused
before any download. A failed download leaves no partial file behind, and removes the folders it created
for it if they are still empty.
"""
import hashlib
import urllib.error
import urllib.request
from http.client import HTTPException
from pathlib import Path

from src.model_utils.atomic_file import remove_stale_temporaries, replacing
from src.model_utils.errors import UserError
from src.model_utils.outputs import remove_if_empty

DEFAULT_DOWNLOAD_URL = "https://github.com/brendenlake/omniglot/raw/master/python/"
OFFICIAL_MD5 = {
    "images_background.zip": "68d2efa1b9178cc56df9314c21c6e718",
    "images_evaluation.zip": "6b91aef0f799c5bb55b94e3f2daec811",
}
DOWNLOAD_TIMEOUT_S = 60


def _read_checksums(path):
    """SHA256SUMS format ('<hex>  <name>' or '<hex> *<name>') -> {name: ('sha256', hex)}."""
    try:
        lines = Path(path).read_text().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"cannot read checksum file {path} ({err}):"
                        " pass --checksums a SHA256SUMS file") from None
    sums = {}
    for line in lines:
        parts = line.strip().split(maxsplit=1)
        if len(parts) == 2:
            sums[parts[1].lstrip("*")] = ("sha256", parts[0].lower())
    missing = [name for name in OFFICIAL_MD5 if name not in sums]
    if missing:
        raise UserError(f"checksum file {path} has no entry for {', '.join(missing)}:"
                        " pass --checksums a SHA256SUMS file that lists both zips")
    return sums


def _file_digest(path, algo):
    digest = hashlib.new(algo)
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _fetch(url, dest, algo, expected):
    """Stream url to a temp file next to dest while hashing; only a verified file gets dest's name."""
    digest = hashlib.new(algo)
    with replacing(dest, "pass --data_path a writable folder") as tmp:
        try:
            with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response, open(tmp, "wb") as f:
                while block := response.read(1 << 20):
                    digest.update(block)
                    f.write(block)
        except (urllib.error.URLError, HTTPException, TimeoutError, ConnectionError, ValueError) as err:
            reason = getattr(err, "reason", err)
            if isinstance(err, urllib.error.HTTPError):
                reason = f"HTTP {err.code} {err.reason}"
            raise UserError(f"download failed: {url} ({reason}); check the connection, or download"
                            f" the zips by hand into {dest.parent}/") from None
        actual = digest.hexdigest()
        if actual != expected:
            raise UserError(f"checksum mismatch for {dest.name} from {url}: expected {algo} {expected},"
                            f" got {actual}; the download is corrupt, or the server holds another build"
                            " of the zips (then pass --checksums with its SHA256SUMS)")


def _already_verified(dest, algo, expected):
    """Whether dest already is the verified zip (False: nothing there). Anything else at that name is
    the user's, and is refused rather than replaced."""
    if not (dest.exists() or dest.is_symlink()):
        return False
    try:
        if dest.is_file() and _file_digest(dest, algo) == expected:
            return True
        problem = f"does not match the expected {algo} {expected}" if dest.is_file() else "is not a file"
    except OSError as err:
        problem = f"cannot be read ({err.strerror or err})"
    raise UserError(f"{dest} already exists and {problem}: --download never replaces a file; move it away"
                    " to download a fresh copy, or drop --download to use it as is")


def _missing_folders(folder):
    """`folder` and those of its parents that do not exist yet, deepest first."""
    missing = []
    while not (folder.exists() or folder.is_symlink()):
        missing.append(folder)
        folder = folder.parent
    return missing


def download_omniglot(data_path, base_url=DEFAULT_DOWNLOAD_URL, checksums=None, log=print):
    """Fetch the zips missing from DATA/raw/; one already there must be the verified zip, and stays."""
    sums = _read_checksums(checksums) if checksums else {n: ("md5", h) for n, h in OFFICIAL_MD5.items()}
    raw = Path(data_path) / "raw"
    remove_stale_temporaries(raw)
    missing = []
    for name in OFFICIAL_MD5:
        algo, expected = sums[name]
        if _already_verified(raw / name, algo, expected):
            log(f"{raw / name} already present and verified ({algo})")
        else:
            missing.append(name)
    if not missing:
        return
    created = _missing_folders(raw)
    try:
        try:
            raw.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise UserError(f"cannot create {raw} ({err.strerror or err}):"
                            " pass --data_path a writable folder") from None
        for name in missing:
            algo, expected = sums[name]
            url = base_url.rstrip("/") + "/" + name
            log(f"downloading {url} -> {raw / name}")
            _fetch(url, raw / name, algo, expected)  # a failed fetch removes its partial file
            log(f"  verified {algo} {expected}")
    except BaseException:
        for folder in created:
            remove_if_empty(folder)
        raise
