"""The progress log: timestamped lines on the console (and, through the launch scripts, in a log file)."""
import sys
import time


def log(message, file=None):
    """Timestamped progress line, flushed at once so that piped logs (tee) follow the run live."""
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}", file=file or sys.stdout, flush=True)


def counted(n, noun, plural=None):
    """'1 inner step', '10 inner steps', '1 query', '15 queries': a count with its noun for the logs."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"
