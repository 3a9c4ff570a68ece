"""Hostile inputs the hardening tests share."""

import struct
import zlib

import numpy as np


def png_declaring(width: int, height: int) -> bytes:
    """A valid small PNG whose header is rewritten (CRC fixed) to declare another size: a
    decompression bomb's header, without the bomb."""
    import cv2

    ok, png = cv2.imencode(".png", np.zeros((2, 2, 3), np.uint8))
    data = bytearray(png.tobytes())
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)
