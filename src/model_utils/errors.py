"""One-line errors for users: bad input must never end in a stack trace."""
import argparse
import os
import signal
import sys
import threading

# An error line is read, not searched: a value quoted in it is cut to SHOWN_CHARS, the line to LINE_CHARS.
SHOWN_CHARS = 80
LINE_CHARS = 2000


class UserError(Exception):
    """A problem the user can fix; the message says what is wrong and how to fix it."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose errors (a missing value, a bad choice, a required option left out) are a
    UserError, so that run_cli prints one `error:` line instead of the usage text. argparse's message
    names the option and what it takes; no program name is added, as a launch script may be the caller.
    Abbreviations of options are refused (`--file_n` is not `--file_name`): they would change meaning when an
    option is added."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message):
        raise UserError(message)


def one_line(text):
    """`text` with backslashes and control characters (line breaks, tabs, escapes) written as Python
    escapes, so that a name from the file system can never split or forge a line of output."""
    return "".join(ch if ch.isprintable() and ch != "\\" else ch.encode("unicode_escape").decode("ascii")
                   for ch in str(text))


def _interrupted(signum, frame):
    raise KeyboardInterrupt


def catch_interrupts():
    """Make Ctrl-C a KeyboardInterrupt (main thread only), also where SIGINT was ignored on start (a job a script
    starts with `&` inherits that) and where MindSpore has turned it into a SIGTERM: while it runs a graph, its
    own SIGINT handler ends the process by SIGTERM, which would be "Terminated" (exit code 143). The two cannot be
    told apart, so SIGTERM stops a run as Ctrl-C does: `finally` blocks run, then exit code 130."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, _interrupted)


def shown(value):
    """repr(value) for an error line, cut to SHOWN_CHARS characters: a value may be megabytes long."""
    text = repr(value) if len(str(value)) <= SHOWN_CHARS * 4 else repr(str(value)[:SHOWN_CHARS * 4])
    return text if len(text) <= SHOWN_CHARS else f"{text[:SHOWN_CHARS]}... ({len(str(value))} characters)"


def cut(line):
    """`line` cut to LINE_CHARS characters, saying how much was left out."""
    return line if len(line) <= LINE_CHARS else f"{line[:LINE_CHARS]}... ({len(line) - LINE_CHARS} more characters)"


def child_error(what, returncode, output):
    """The UserError for a child process that failed. Exit code 2 is a child of this package refusing its
    input: its own `error:` message is the message. Otherwise `what` failed, with the exit code and the
    child's last error line (its last `error:` line, else its last line: a traceback's exception)."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line[len("error:"):].strip() for line in lines if line.startswith("error:")]
    if returncode == 2 and errors:
        return UserError(errors[-1])
    last = errors[-1] if errors else (lines[-1] if lines else "it printed nothing")
    return UserError(f"{what} failed (exit code {returncode}): {last}")


def run_cli(main, argv=None):
    """Run `main(argv)`: a UserError becomes one line on stderr and exit code 2, Ctrl-C (or SIGTERM:
    catch_interrupts) exit code 130."""
    catch_interrupts()
    try:
        return main(argv)
    except UserError as err:
        print(f"error: {cut(one_line(err))}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        for signum in (signal.SIGINT, signal.SIGTERM):  # a second one (MindSpore's SIGTERM) must not cut this line
            signal.signal(signum, signal.SIG_IGN)
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)
    except BrokenPipeError:
        # The reader of standard output (e.g. `| head`) has gone: stop quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
