"""The ``wb`` subcommands, one module each: they parse the command line, call the work (``workbench.api`` or the
package that owns it) and print. Nothing here is imported by the rest of the workbench."""

from __future__ import annotations

import contextlib
import sys


@contextlib.contextmanager
def user_errors_exit(command: str):
    """Inside Hydra apps: a WorkbenchError is printed as one clear message and exits with status 2 (Hydra would
    otherwise print a traceback and exit 1)."""
    from workbench.errors import WorkbenchError

    try:
        yield
    except WorkbenchError as exc:
        print(f"wb {command}: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
