"""Under ``CI=true`` a test may not skip: missing ``../shared`` data or a missing optional package is a failure
there (locally a skip with the reason is fine). Loaded by ``conftest.py``; :func:`require` is the helper tests
call for what they need.

Why: without it, a CI machine without ``../shared`` skipped about 40 % of the suite and still passed.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

import pytest

CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def require(what: str | Path, why: str = "") -> Any:
    """``what``: a path (returned when it exists) or a module name (imported and returned). Missing: skip with the
    reason locally, fail under CI=true."""
    if isinstance(what, Path) or "/" in str(what):
        path = Path(what)
        if path.exists():
            return path
        reason = f"{path} not found" + (f" ({why})" if why else "")
    else:
        try:
            return importlib.import_module(str(what))
        except ImportError as exc:
            reason = f"optional package {what} not importable ({exc})" + (f"; {why}" if why else "")
    unavailable(reason)


def unavailable(reason: str) -> None:
    """Something a test needs is missing: skip with ``reason`` locally, fail under CI=true."""
    if CI:
        pytest.fail(f"CI=true: {reason}", pytrace=False)
    pytest.skip(reason)


def _reason(longrepr) -> str:
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if CI and rep.skipped and not hasattr(rep, "wasxfail"):
        rep.outcome = "failed"
        rep.longrepr = f"CI=true: this test skipped, and tests may not skip in CI: {_reason(rep.longrepr)}"


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    rep = outcome.get_result()
    if CI and rep.skipped:  # pytest.importorskip / skip(allow_module_level=True) at import time
        rep.outcome = "failed"
        rep.longrepr = f"CI=true: {collector.nodeid} skipped at collection, and tests may not skip in CI: " \
                       f"{_reason(rep.longrepr)}"
