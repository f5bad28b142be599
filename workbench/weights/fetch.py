"""Downloads into the local cache: resumable, with a progress bar, integrity-checked, and an offline mode.

Official PP-OCR weights and dictionaries live on Baidu's CDN / GitHub. Machines without internet (or with a proxy
that breaks downloads) are common, so:
* a download goes to ``<file>.part`` and resumes from where it stopped (HTTP Range) on the next try;
* the result is checked — size against Content-Length, sha256 when known — before it is renamed into place;
  a file that fails the check is moved aside, never used;
* ``WB_OFFLINE=1`` never touches the network and says exactly where to put the file by hand.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path
from typing import Optional

from workbench.config.paths import cache_dir  # noqa: F401  (re-exported: weights.fetch.cache_dir)
from workbench.errors import WeightsError

log = logging.getLogger("workbench.weights")

CHUNK = 1 << 20


def offline() -> bool:
    return os.environ.get("WB_OFFLINE", "").lower() in ("1", "true", "yes")


def sha256_of(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def fetch(
    url: str,
    dest: str | Path,
    *,
    sha256: Optional[str] = None,
    size: Optional[int] = None,
    progress: bool = True,
    timeout: float = 60.0,
    max_attempts: int = 3,
    offline_mode: Optional[bool] = None,
) -> Path:
    """Download ``url`` to ``dest`` unless a verified copy is already there; returns ``dest``.

    ``sha256`` / ``size``: the pinned digest and byte count; a file that differs is moved aside as
    ``<name>.corrupt``, never left under ``dest``. The download goes to ``<name>.part`` (fsync'ed) and is renamed
    to ``dest`` only once verified. ``offline_mode``: never touch the network (None = ``$WB_OFFLINE``)."""
    dest = Path(dest)
    if dest.is_file():
        if (size is None or dest.stat().st_size == size) and (sha256 is None or sha256_of(dest) == sha256):
            return dest
        bad = dest.with_name(dest.name + ".corrupt")
        os.replace(dest, bad)
        log.warning("%s failed its sha256 check; moved to %s and downloading again", dest, bad)
    if offline() if offline_mode is None else offline_mode:
        raise WeightsError(
            f"offline mode (WB_OFFLINE=1): {dest.name} is not in the cache.\n"
            f"  Download it elsewhere from {url}\n  and put it at {dest}"
            + (f"\n  (sha256 {sha256})" if sha256 else "")
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    last_error: Optional[Exception] = None
    for attempt in range(1, max_attempts + 1):
        try:
            _download(url, part, progress=progress, timeout=timeout)
            break
        except (urllib.error.URLError, OSError, http.client.HTTPException, IncompleteDownload) as exc:
            last_error = exc
            log.warning("download of %s interrupted (%s); attempt %d/%d", url, exc, attempt, max_attempts)
    else:
        raise WeightsError(
            f"could not download {url}: {last_error}\n  The partial file {part} is kept; run the command again to "
            f"resume, or download the file by hand and put it at {dest}"
        )
    if size is not None and part.stat().st_size != size:
        bad = dest.with_name(dest.name + ".corrupt")
        got_size = part.stat().st_size
        os.replace(part, bad)
        raise WeightsError(f"{url}: {got_size:,} bytes, the pinned size is {size:,}; kept as {bad}, not used")
    if sha256 is not None:
        got = sha256_of(part)
        if got != sha256:
            bad = dest.with_name(dest.name + ".corrupt")
            os.replace(part, bad)
            raise WeightsError(f"{url}: sha256 {got} does not match the expected {sha256}; kept as {bad}")
    with open(part, "rb") as fh:  # the bytes are on disk before the final name points at them
        os.fsync(fh.fileno())
    os.replace(part, dest)
    return dest


class IncompleteDownload(Exception):
    pass


def _download(url: str, part: Path, *, progress: bool, timeout: float) -> None:
    have = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"User-Agent": "ocr-workbench"})
    if have:
        req.add_header("Range", f"bytes={have}-")
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # Range not satisfiable: the part file is already complete
            return
        raise
    with resp:
        status = getattr(resp, "status", 200)
        length = resp.headers.get("Content-Length")
        if have and status == 206:
            mode, total = "ab", have + int(length) if length else None
        else:  # server ignored Range: start over
            mode, total, have = "wb", int(length) if length else None, 0
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=total, initial=have, unit="B", unit_scale=True, desc=part.name[: -len(".part")])
        written = have
        try:
            with open(part, mode) as f:
                while True:
                    block = resp.read(CHUNK)
                    if not block:
                        break
                    f.write(block)
                    written += len(block)
                    if bar is not None:
                        bar.update(len(block))
        finally:
            if bar is not None:
                bar.close()
    if total is not None and written != total:
        raise IncompleteDownload(f"got {written} of {total} bytes")


def copy_into_cache(src: str | Path, name: str) -> Path:
    dst = cache_dir() / name
    shutil.copyfile(src, dst)
    return dst
