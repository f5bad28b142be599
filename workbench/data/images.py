"""Image decoding that names the label line of a missing, corrupt or truncated image.

Decoding is OpenCV's ``imdecode(..., IMREAD_COLOR)``, as PaddleX's ``ReadImage`` and upstream's ``DecodeImage``: the
result is always BGR uint8 with 3 channels (grey images are expanded, an alpha channel is dropped, an EXIF
orientation is applied).

Truncation. OpenCV decodes a JPEG whose tail is missing without an error: libjpeg invents the missing pixels (grey
or black rows; in progressive JPEGs every region loses detail). In a test on a SROIE scan, cutting 1 % of the file
blacked out the bottom 10 % of the page. The labels then describe pixels that are not there, so a file that ends
before its end marker (JPEG EOI ``FFD9``, PNG ``IEND`` chunk) is an **error** (``truncated_image``). A user who wants
such images anyway can accept the code (``DataPolicy(accept={"truncated_image"})``, ``--accept truncated_image``),
and they are then used as decoded. Zero bytes after the end marker (padding some writers add) are fine.
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from workbench.errors import DataError
from workbench.data.findings import Finding

_JPEG_MAGIC = b"\xff\xd8\xff"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_PNG_END = b"IEND\xaeB`\x82"

# Decoding allocates width x height x 3 bytes before a single pixel is read: a 100-byte file can declare 50000^2
# pixels (7.5 GB). Images whose header declares more than this are refused unread. 2^27 = 134 M pixels (e.g.
# 11585^2, 400 MB as BGR) is far above any scan in ../shared (SROIE receipts: <= 35 M).
MAX_IMAGE_PIXELS = int(os.environ.get("WB_MAX_IMAGE_PIXELS", 1 << 27))


class SampleRef(Protocol):
    """Anything that knows its label file and line (``RecSample``, ``DetSample``)."""

    file: str
    line: int | None


def sniff_format(head: bytes) -> str:
    """Format from the first bytes of a file: jpeg, png, bmp, tiff, webp, gif, or unknown."""
    if head.startswith(_JPEG_MAGIC):
        return "jpeg"
    if head.startswith(_PNG_MAGIC):
        return "png"
    if head.startswith(b"BM"):
        return "bmp"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    return "unknown"


def is_truncated(fmt: str, data: bytes) -> bool:
    """Whether a JPEG / PNG ends before its end marker. ``data``: the file's bytes, or at least its last few KB.
    Zero bytes after the marker (padding some writers add) are ignored."""
    if fmt not in ("jpeg", "png"):
        return False
    end = len(data)
    while end > 0:  # skip the zero padding, 4 KB at a time
        chunk = data[max(0, end - 4096):end]
        kept = len(chunk.rstrip(b"\x00"))
        end -= len(chunk) - kept
        if kept:
            break
    tail = data[max(0, end - 16):end]
    return not tail.endswith(b"\xff\xd9" if fmt == "jpeg" else _PNG_END)


def _where(path, sample: SampleRef | None) -> tuple[str, int | None]:
    if sample is not None:
        return str(sample.file), sample.line
    return str(path), None


def image_finding(code: str, path, sample: SampleRef | None, detail: str = "") -> Finding:
    """A finding about an image, located at its label line when the sample is known."""
    file, line = _where(path, sample)
    if sample is None:  # the finding's file is the image itself
        return Finding.make(code, file, line, detail or "unusable image")
    return Finding.make(code, file, line, f"{path}: {detail}" if detail else str(path))


def _png_jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG IHDR chunk or a JPEG SOF marker; None for other formats / no such header."""
    import struct

    if data.startswith(_PNG_MAGIC) and data[12:16] == b"IHDR" and len(data) >= 24:
        return struct.unpack(">II", data[16:24])
    if data.startswith(b"\xff\xd8"):
        i = 2
        while i + 9 <= len(data):
            if data[i] != 0xFF:
                return None
            marker = data[i + 1]
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length field
                i += 2
                continue
            length = struct.unpack(">H", data[i + 2:i + 4])[0]
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # a start-of-frame
                h, w = struct.unpack(">HH", data[i + 5:i + 9])
                return w, h
            i += 2 + length
    return None


def declared_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) the image header declares, without decoding a pixel (PNG / JPEG headers read here, other
    formats by PIL); ``(-1, -1)`` when PIL itself refuses the header as a decompression bomb; None when no header
    can be read."""
    from PIL import Image

    size = _png_jpeg_size(data)
    if size is not None:
        return int(size[0]), int(size[1])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                return int(im.size[0]), int(im.size[1])
    except Image.DecompressionBombError:
        return -1, -1
    except Exception:  # noqa: BLE001 - no readable header: OpenCV gets its chance and reports what it finds
        return None


def too_large(data: bytes) -> str | None:
    """Why an image must not be decoded (its header declares more than MAX_IMAGE_PIXELS), or None."""
    size = declared_size(data)
    if size is None:
        return None
    w, h = size
    if w < 0:
        return f"the header declares more pixels than PIL will open; limit {MAX_IMAGE_PIXELS:,} (WB_MAX_IMAGE_PIXELS)"
    if w * h > MAX_IMAGE_PIXELS:
        return (f"the header declares {w} x {h} = {w * h:,} pixels ({w * h * 3 / 1e9:.1f} GB decoded), more than "
                f"{MAX_IMAGE_PIXELS:,} (WB_MAX_IMAGE_PIXELS): refused without decoding")
    return None


def decode_image_bytes(data: bytes) -> np.ndarray | None:
    """OpenCV decode to BGR uint8 HxWx3 (None when OpenCV cannot decode it). Callers check :func:`too_large`
    first; OpenCV's own size limit (an exception) is also a failed decode here."""
    if not data:
        return None
    try:
        img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    except cv2.error:
        return None
    if img is None or img.ndim != 3 or img.shape[2] != 3 or img.size == 0:
        return None
    return img


def check_image_bytes(data: bytes, path, sample: SampleRef | None = None, *,
                      allow_truncated: bool = False) -> tuple[np.ndarray | None, list[Finding]]:
    """Decode bytes already read from ``path``; returns ``(image or None, findings)``.

    A truncated file gives a ``truncated_image`` finding and, when ``allow_truncated``, the image as decoded."""
    if not data:
        return None, [image_finding("corrupt_image", path, sample, "the file is empty")]
    fmt = sniff_format(data[:16])
    findings = []
    reason = too_large(data)
    if reason is not None:
        return None, [image_finding("image_too_large", path, sample, reason)]
    if is_truncated(fmt, data):
        marker = "EOI marker FFD9" if fmt == "jpeg" else "IEND chunk"
        findings.append(image_finding("truncated_image", path, sample,
                                      f"the {fmt.upper()} file ends without its {marker} ({len(data)} bytes)"))
        if not allow_truncated or fmt == "png":
            # OpenCV refuses truncated PNGs anyway (and prints libpng errors); do not even try.
            return None, findings
    img = decode_image_bytes(data)
    if img is None:
        why = "OpenCV cannot decode it" + (" (GIF is not supported by OpenCV)" if fmt == "gif" else "")
        if fmt == "unknown":
            why += f"; it does not look like an image (first bytes {data[:8].hex()})"
        findings.append(image_finding("corrupt_image", path, sample, why))
        return None, findings
    return img, findings


def read_image(path, *, sample: SampleRef | None = None, allow_truncated: bool = False) -> np.ndarray:
    """Read an image as BGR uint8 HxWx3, or raise :class:`DataError` naming ``sample``'s label file:line.

    Missing, undecodable and truncated files raise (see the module doc for truncation); ``allow_truncated``
    returns a truncated JPEG as OpenCV decodes it."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        f = image_finding("missing_image", path, sample, "no such file")
        raise DataError(f"image not found: {path}", [f]) from None
    except IsADirectoryError:
        f = image_finding("missing_image", path, sample, "this is a directory, not a file")
        raise DataError(f"image not found: {path}", [f]) from None
    except OSError as e:
        f = image_finding("corrupt_image", path, sample, f"cannot read the file: {e.strerror or e}")
        raise DataError(f"cannot read image {path}", [f]) from None
    img, findings = check_image_bytes(data, path, sample, allow_truncated=allow_truncated)
    if img is None:
        raise DataError(f"cannot use image {path}", findings)
    return img


@dataclass(frozen=True)
class ImageInfo:
    """What ``probe_image`` learns from a file header (no pixel decoding).

    ``width``/``height`` are those of the decoded image, i.e. after the EXIF orientation OpenCV applies."""

    path: str
    format: str
    width: int
    height: int
    size_bytes: int
    truncated: bool
    exif_orientation: int | None = None


def probe_image(path) -> ImageInfo:
    """Cheap header check: format, size, truncation, EXIF orientation. Raises :class:`DataError` (``missing_image``
    / ``corrupt_image``) when the file is missing or has no readable image header."""
    from PIL import Image, UnidentifiedImageError  # lazy: only the data check probes

    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(16)
            fh.seek(max(0, size - 4096))
            tail = fh.read(4096)
    except FileNotFoundError:
        raise DataError(f"image not found: {path}", [image_finding("missing_image", path, None, "no such file")]) \
            from None
    except OSError as e:
        raise DataError(f"cannot read image {path}",
                        [image_finding("corrupt_image", path, None, str(e.strerror or e))]) from None
    fmt = sniff_format(head)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)
        with im:
            width, height = im.size
            orientation = None
            if fmt in ("jpeg", "tiff", "webp", "png"):
                orientation = im.getexif().get(0x0112)  # Orientation tag
    except Image.DecompressionBombError as e:
        raise DataError(f"image too large {path}", [image_finding("image_too_large", path, None, str(e))]) from None
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise DataError(f"cannot read image header {path}",
                        [image_finding("corrupt_image", path, None, f"no readable image header ({e})")]) from None
    if width * height > MAX_IMAGE_PIXELS:
        raise DataError(f"image too large {path}", [image_finding(
            "image_too_large", path, None, f"{width} x {height} pixels, more than {MAX_IMAGE_PIXELS:,} "
            "(WB_MAX_IMAGE_PIXELS)")])
    if orientation in (5, 6, 7, 8):  # transposed: OpenCV returns it rotated by 90 degrees
        width, height = height, width
    return ImageInfo(str(path), fmt, int(width), int(height), size, is_truncated(fmt, tail),
                     int(orientation) if orientation else None)


def file_exists(path) -> bool:
    return os.path.isfile(path)
