"""What a person is told when MLflow cannot answer: one line that says what to do, not mlflow's exception chain.

MLflow's HTTP client wraps a refused connection in an ``MlflowException`` whose text is a URL, a retry count and a
nested ``NewConnectionError`` repr; :func:`failure_text` turns any MLflow failure into one line, and an unreachable
server into the hint to start it or to point ``MLFLOW_TRACKING_URI`` / ``tracking_uri=`` elsewhere.
"""

from __future__ import annotations

import contextlib
from typing import Iterator
from urllib.parse import urlparse

from workbench.errors import WorkbenchError

_UNREACHABLE = ("Max retries exceeded", "Failed to establish a new connection", "Connection refused",
                "Name or service not known", "nodename nor servname", "Read timed out", "Connection aborted",
                "RemoteDisconnected", "Temporary failure in name resolution")


class TrackingError(WorkbenchError):
    """An MLflow call a command needs (not a training run's logging, which never fails the run) did not work."""


def is_unreachable(exc: BaseException) -> bool:
    """True when ``exc`` (or what caused it) says the tracking server did not answer at all."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, (ConnectionError, TimeoutError)) or any(s in str(exc) for s in _UNREACHABLE):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def unreachable_hint(uri: str) -> str:
    parsed = urlparse(uri)
    if parsed.scheme in ("http", "https"):
        start = f"`mlflow server --host {parsed.hostname} --port {parsed.port or 5000}`"
        return (f"MLflow at {uri} is not reachable: start it ({start}) or point MLFLOW_TRACKING_URI / "
                "tracking_uri= at a running server")
    return f"MLflow at {uri} is not usable: check MLFLOW_TRACKING_URI / tracking_uri="


def failure_text(exc: BaseException, uri: str) -> str:
    """One line about an MLflow failure: the unreachable-server hint, else the exception's first line."""
    if is_unreachable(exc):
        return unreachable_hint(uri)
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"MLflow at {uri}: {type(exc).__name__}: {first[:300]}"


@contextlib.contextmanager
def mlflow_call(uri: str, what: str = "") -> Iterator[None]:
    """Turn any failure of the MLflow calls inside the block into a one-line :class:`TrackingError`."""
    try:
        yield
    except WorkbenchError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever mlflow raises, the user gets one line
        raise TrackingError((f"{what}: " if what else "") + failure_text(exc, uri)) from None
