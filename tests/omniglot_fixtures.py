"""Helpers to fake damaged Omniglot inputs and a local download server, without touching the originals."""
import contextlib
import functools
import http.server
import io
import struct
import threading
import zipfile

from PIL import Image

LOCAL_HEADER_SIZE = 30


def png_bytes(size):
    """A valid 1-bit PNG of the given (w, h), white like an Omniglot scan."""
    buf = io.BytesIO()
    Image.new("1", size, 1).save(buf, "PNG")
    return buf.getvalue()


def first_png(zip_path):
    """The member that lands in the first decoding chunk, so a planted fault is hit immediately."""
    with zipfile.ZipFile(zip_path) as zf:
        return min(n for n in zf.namelist() if n.endswith(".png"))


def copy_zip(src, dst, drop=(), replace=None):
    """Copy src to dst (stored, uncompressed), leaving out `drop` members and swapping `replace` contents."""
    replace = replace or {}
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            if info.filename not in drop:
                zout.writestr(info.filename, replace.get(info.filename) or zin.read(info))
    return dst


def flip_member_byte(zip_path, member):
    """Flip one data byte of a stored member in place: the zip stays listable but fails its CRC check."""
    with zipfile.ZipFile(zip_path) as zf:
        info = zf.getinfo(member)
    assert info.compress_type == zipfile.ZIP_STORED
    with open(zip_path, "r+b") as f:
        f.seek(info.header_offset + 26)
        name_len, extra_len = struct.unpack("<HH", f.read(4))
        pos = info.header_offset + LOCAL_HEADER_SIZE + name_len + extra_len + info.file_size // 2
        f.seek(pos)
        byte = f.read(1)[0]
        f.seek(pos)
        f.write(bytes([byte ^ 0xFF]))


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serve_directory(folder):
    """Serve `folder` over HTTP on 127.0.0.1 (free port) in a thread; yield the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
