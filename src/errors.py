"""One-line errors for users: bad input must never end in a stack trace."""
import sys


class UserError(Exception):
    """A problem the user can fix; the message says what is wrong and how to fix it."""


def run_cli(main, argv=None):
    """Run `main(argv)` and turn a UserError (or Ctrl-C) into one line on stderr and exit code 2."""
    try:
        return main(argv)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)
