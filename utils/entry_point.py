"""How the command-line scripts end on a user's mistake: one line on stderr and exit status 2, no traceback."""
from __future__ import annotations

import sys
from collections.abc import Callable

USER_ERRORS: tuple[type[BaseException], ...] = (FileNotFoundError, ValueError)


def run_entry_point(entry: Callable[[], object], errors: tuple[type[BaseException], ...] = USER_ERRORS) -> None:
    """Call `entry`; if it raises one of `errors` (a missing folder, a bad flag value), print it and exit 2."""
    try:
        entry()
    except errors as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
