"""The image scan of ``wb data check``: read, hash and decode (or only sniff the header of) every image once."""

from __future__ import annotations

import concurrent.futures
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from workbench.data.images import check_image_bytes, is_truncated, sniff_format

PROGRESS_MIN_ITEMS = 500


@dataclass
class ImageScan:
    """What the check learned about one image file."""

    path: str
    exists: bool = False
    format: str = "unknown"
    width: int = 0
    height: int = 0
    digest: str | None = None
    problem: str | None = None  # a code: missing_image / corrupt_image / truncated_image
    detail: str = ""
    exif_orientation: int | None = None

    @property
    def usable_size(self) -> bool:
        return self.width > 0 and self.height > 0


def _scan_one(path: str, decode: bool) -> ImageScan:
    scan = ImageScan(path)
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        scan.problem, scan.detail = "missing_image", "no such file"
        return scan
    except IsADirectoryError:
        scan.problem, scan.detail = "missing_image", "a directory, not a file"
        return scan
    except OSError as e:
        scan.exists = True
        scan.problem, scan.detail = "corrupt_image", f"cannot read the file: {e.strerror or e}"
        return scan
    scan.exists = True
    scan.digest = hashlib.sha1(data).hexdigest()
    scan.format = sniff_format(data[:16])
    if b"Exif" in data[:65536] and scan.format in ("jpeg", "tiff", "webp", "png"):
        scan.exif_orientation = _exif_orientation(path)
    if decode:
        img, findings = check_image_bytes(data, path, None, allow_truncated=True)
        for f in findings:  # truncated first (if any), then corrupt
            if scan.problem is None or f.code == "corrupt_image":
                scan.problem, scan.detail = f.code, f.message
        if img is not None:
            scan.height, scan.width = img.shape[:2]
    else:
        if is_truncated(scan.format, data):
            scan.problem, scan.detail = "truncated_image", f"the {scan.format.upper()} file ends without its end marker"
        try:
            from PIL import Image
            import io

            with Image.open(io.BytesIO(data)) as im:
                scan.width, scan.height = im.size
            if scan.exif_orientation in (5, 6, 7, 8):
                scan.width, scan.height = scan.height, scan.width
        except Exception as e:  # noqa: BLE001  (any PIL failure means: no readable header)
            scan.problem, scan.detail = "corrupt_image", f"no readable image header ({e})"
    return scan


def _exif_orientation(path: str) -> int | None:
    from PIL import Image

    try:
        with Image.open(path) as im:
            value = im.getexif().get(0x0112)
    except Exception:  # noqa: BLE001  (a broken EXIF block is not our finding to make)
        return None
    return int(value) if value and int(value) != 1 else None


def scan_images(paths: Sequence[str], *, decode: bool = True, workers: int = 2,
                progress: bool | None = None) -> dict[str, ImageScan]:
    """Read, hash and (optionally) decode every image, ``workers`` threads at a time (OpenCV and hashlib release
    the GIL). ``progress``: a tqdm bar on stderr (None: only for large sets on a terminal)."""
    from tqdm import tqdm

    unique = list(dict.fromkeys(paths))
    disable = (not progress) if progress is not None else (len(unique) < PROGRESS_MIN_ITEMS or None)
    out: dict[str, ImageScan] = {}
    with tqdm(total=len(unique), desc="images", unit="img", disable=disable, leave=False) as bar:
        if workers <= 1:
            for p in unique:
                out[p] = _scan_one(p, decode)
                bar.update()
        else:
            with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
                for scan in pool.map(lambda p: _scan_one(p, decode), unique, chunksize=16):
                    out[scan.path] = scan
                    bar.update()
    return out

