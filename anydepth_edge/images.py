"""One bounded image decoder for every image the toolkit reads from outside (a folder source,
`verify --images`, a ROS CompressedImage): the size an image declares in its header is checked
before anything is decoded, so a 600 KB file declaring 15000x15000 costs nothing (OpenCV's own
limit, 2^30 pixels, lets ~3 GB through). Truncated files are refused rather than used half grey,
and only regular files are opened (a FIFO named *.png would block forever). numpy + OpenCV,
Python 3.8.
"""

import os
import stat
import struct
from pathlib import Path
from typing import Optional, Tuple

import numpy as np

MAX_PIXELS = 50_000_000  # 50 Mpx: the largest phone photos; 150 MB decoded
MAX_FILE_BYTES = 256 << 20
FORMATS = ("PNG", "JPEG", "BMP", "WebP", "TIFF")
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")  # what folder sources take


class ImageRefused(ValueError):
    """An image not decoded, and why (one line, no path: callers add what they read)."""


def declared_size(data: bytes) -> Tuple[str, int, int]:
    """(format, width, height) from the header, without decoding; ImageRefused for other formats."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24 and data[12:16] == b"IHDR":
        w, h = struct.unpack(">II", data[16:24])
        return "PNG", w, h
    if data[:2] == b"\xff\xd8":
        return ("JPEG",) + _jpeg_size(data)
    if data[:2] == b"BM" and len(data) >= 26:
        w, h = struct.unpack("<ii", data[18:26])
        return "BMP", abs(w), abs(h)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP" and len(data) >= 30:
        chunk = data[12:16]
        if chunk == b"VP8X":
            return "WebP", 1 + int.from_bytes(data[24:27], "little"), 1 + int.from_bytes(data[27:30], "little")
        if chunk == b"VP8L":
            bits = int.from_bytes(data[21:25], "little")
            return "WebP", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
        if chunk == b"VP8 ":
            w, h = struct.unpack("<HH", data[26:30])
            return "WebP", w & 0x3FFF, h & 0x3FFF
    if data[:4] in (b"II*\0", b"MM\0*"):
        return ("TIFF",) + _tiff_size(data)
    raise ImageRefused(f"not a {', '.join(FORMATS)} image")


def _tiff_size(data: bytes) -> Tuple[int, int]:
    """ImageWidth (256) and ImageLength (257) of the first IFD (in the header's first 64 KB)."""
    end = "<" if data[:2] == b"II" else ">"
    try:
        (ifd,) = struct.unpack(end + "I", data[4:8])
        (count,) = struct.unpack(end + "H", data[ifd:ifd + 2])
        size = {}
        for k in range(count):
            tag, kind, _, value = struct.unpack(end + "HHI4s", data[ifd + 2 + 12 * k: ifd + 14 + 12 * k])
            if tag in (256, 257):
                size[tag] = struct.unpack(end + ("H" if kind == 3 else "I"), value[:2 if kind == 3 else 4])[0]
        return size[256], size[257]
    except (struct.error, KeyError):
        raise ImageRefused("a TIFF whose size is not in its first directory") from None


def _jpeg_size(data: bytes) -> Tuple[int, int]:
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            raise ImageRefused("a damaged JPEG header")
        marker = data[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            i += 2
            continue
        if marker == 0xFF:
            i += 1
            continue
        length = struct.unpack(">H", data[i + 2:i + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # SOFn: the frame size
            h, w = struct.unpack(">HH", data[i + 5:i + 9])
            return w, h
        i += 2 + length
    raise ImageRefused("a JPEG without a frame header (truncated?)")


def _complete(fmt: str, data: bytes) -> bool:
    """Whether the file ends as its format ends (a cut transfer does not)."""
    tail = data.rstrip(b"\0")[-12:]
    if fmt == "JPEG":
        return tail.endswith(b"\xff\xd9")
    if fmt == "PNG":
        return b"IEND" in tail
    return True  # BMP, WebP and TIFF locate their data by offsets; OpenCV refuses short ones


def decode_image(data: bytes, cv2, max_pixels: int = MAX_PIXELS, flags: Optional[int] = None) -> np.ndarray:
    """BGR uint8 (H, W, 3) of encoded image bytes (`flags` cv2.IMREAD_UNCHANGED: as stored, e.g. a
    16-bit depth PNG); ImageRefused with the reason otherwise."""
    fmt, w, h = declared_size(bytes(data[:65536]))
    if w <= 0 or h <= 0:
        raise ImageRefused(f"a {fmt} declaring {w}x{h} pixels")
    if w * h > max_pixels:
        raise ImageRefused(f"a {fmt} declaring {w}x{h} pixels (over the {max_pixels / 1e6:.0f} Mpx this decodes)")
    if not _complete(fmt, data):
        raise ImageRefused(f"a truncated {fmt} (its end is missing)")
    try:
        image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR if flags is None else flags)
    except cv2.error as e:  # OpenCV's own assertions: one line, not its trace
        raise ImageRefused(f"a {fmt} OpenCV cannot decode ({str(e).strip().splitlines()[-1]})") from None
    if image is None:
        raise ImageRefused(f"a {fmt} that does not decode")
    return image


def read_image_file(path, cv2, max_pixels: int = MAX_PIXELS, flags: Optional[int] = None) -> np.ndarray:
    """BGR uint8 of an image file; ImageRefused (not a regular file, too large, see decode_image)."""
    path = Path(path)
    try:
        st = os.stat(str(path))
        if not stat.S_ISREG(st.st_mode):
            raise ImageRefused("not a regular file")
        if st.st_size > MAX_FILE_BYTES:
            raise ImageRefused(f"{st.st_size >> 20} MB, over the {MAX_FILE_BYTES >> 20} MB an image may have")
        with open(str(path), "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as e:
        raise ImageRefused(e.strerror or str(e)) from None
    return decode_image(data, cv2, max_pixels, flags)


def check_raw_size(width: int, height: int, max_pixels: int = MAX_PIXELS) -> Optional[str]:
    """Why a raw (uncompressed) image of this size is refused, or None."""
    if width <= 0 or height <= 0:
        return f"{width}x{height} pixels"
    if width * height > max_pixels:
        return f"{width}x{height} pixels (over the {max_pixels / 1e6:.0f} Mpx this takes)"
    return None
