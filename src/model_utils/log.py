"""The progress log: timestamped lines on the console (and, through the launch scripts, in a log file)."""
import sys
import time


def log(message, file=None):
    """Timestamped progress line, flushed at once so that piped logs (tee) follow the run live. One write with
    its newline: unbuffered (the launch scripts set PYTHONUNBUFFERED), print's two writes let a Ctrl-C between
    them leave the line without its end, and the error line then joins it."""
    file = file or sys.stdout
    file.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")
    file.flush()


def counted(n, noun, plural=None):
    """'1 inner step', '10 inner steps', '1 query', '15 queries': a count with its noun for the logs."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"
