"""The repository stays small: no tracked file over 2 MB unless it is on the allow-list below.

Why: ``profiler_log/`` (13 Paddle profiler traces, ~50 MB, 97 % of the repository's bytes) was once committed by
accident. Generated files (traces, weights, run dirs, MLflow stores) belong in ``.gitignore``; real data and
models live in ``../shared``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
MAX_BYTES = 2 * 1024 * 1024
# Paths (relative to the project root) allowed to exceed MAX_BYTES, each with its reason. Empty today.
ALLOWED_LARGE_FILES: dict[str, str] = {}


def tracked_files(root: Path) -> list[str]:
    if shutil.which("git") is None or not (root / ".git").exists():
        if os.environ.get("CI"):
            pytest.fail(f"{root} is not a git checkout (or git is missing): cannot list tracked files")
        pytest.skip("not a git checkout")
    out = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True).stdout
    return [p for p in out.decode("utf-8", "surrogateescape").split("\0") if p]


def oversized(root: Path, paths: list[str], limit: int) -> list[tuple[str, int]]:
    sizes = []
    for rel in paths:
        path = root / rel
        # a file deleted in the work tree but not yet committed is not in the next commit
        if path.is_file() and not path.is_symlink():
            size = path.stat().st_size
            if size > limit and rel not in ALLOWED_LARGE_FILES:
                sizes.append((rel, size))
    return sorted(sizes, key=lambda item: -item[1])


def test_no_tracked_file_over_2mb():
    big = oversized(PROJECT_ROOT, tracked_files(PROJECT_ROOT), MAX_BYTES)
    assert not big, "tracked files over 2 MB (add them to .gitignore, or to ALLOWED_LARGE_FILES with a reason):\n" + \
        "\n".join(f"  {rel}  {size / 1e6:.1f} MB" for rel, size in big)


def test_the_size_check_finds_a_large_file(tmp_path):
    """The check itself can fail: a 3 MB tracked file in a scratch repository is reported."""
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "small.txt").write_text("x")
    (tmp_path / "trace.json").write_bytes(b"0" * (3 * 1024 * 1024))
    subprocess.run(["git", "add", "small.txt", "trace.json"], cwd=tmp_path, check=True)
    assert oversized(tmp_path, tracked_files(tmp_path), MAX_BYTES) == [("trace.json", 3 * 1024 * 1024)]


def test_readme_pictures_are_small_and_shown():
    """The README's pictures (docs/pictures/*.png, made by docs/pictures/make_pictures.py) stay under 300 kB each,
    and every one is shown in the README."""
    pictures = sorted((PROJECT_ROOT / "docs" / "pictures").glob("*.png"))
    assert {p.name for p in pictures} >= {"bad_cases.png", "analysis_verdict.png", "mlflow_run.png"}
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    for p in pictures:
        assert p.stat().st_size < 300_000, p
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", p
        assert f"(docs/pictures/{p.name})" in readme, p.name
