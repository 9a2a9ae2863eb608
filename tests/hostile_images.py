"""Uploads a hostile client would send, built in memory: small files that cost a decoder memory or time.

Each builder returns bytes well inside the upload limit; what they cost the server is what the tests measure.
"""
from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image

from tests.images import encode, gradient


def lossless_webp(side: int = 8000, mode: str = "RGB") -> bytes:
    """A flat lossless WebP: a few dozen bytes that decode to side x side pixels."""
    return encode(Image.new(mode, (side, side), (40, 90, 160, 255)[:len(mode)]), "WEBP", lossless=True,
                  quality=0, method=0)


def png_16bit_grey(side: int = 8000) -> bytes:
    """A flat 16-bit greyscale PNG (mode I;16)."""
    return encode(Image.fromarray(np.full((side, side), 40_000, dtype=np.uint16)), "PNG", compress_level=9)


def png_rgba(side: int = 8000) -> bytes:
    """A flat half-transparent RGBA PNG."""
    return encode(Image.new("RGBA", (side, side), (200, 30, 30, 128)), "PNG", compress_level=9)


def png_palette_transparent(side: int = 8000) -> bytes:
    """A palette PNG with a transparent palette entry (mode P with `transparency`)."""
    image = Image.new("P", (side, side), 1)
    image.putpalette([0, 0, 0, 250, 120, 10] + [0] * 762)
    return encode(image, "PNG", transparency=0, compress_level=9)


def tiff_float32(side: int = 8000) -> bytes:
    """A flat float32 greyscale TIFF (mode F), deflate-compressed."""
    return encode(Image.fromarray(np.full((side, side), 0.25, dtype=np.float32)), "TIFF", compression="tiff_adobe_deflate")


def progressive_scan_bomb(repeats: int = 5000, side: int = 256) -> bytes:
    """A progressive JPEG whose last scan is repeated `repeats` times: every copy is a full pass for the decoder."""
    data = encode(gradient(side, side), "JPEG", quality=90, progressive=True)
    last_scan = data.rfind(b"\xff\xda")
    end = data.rfind(b"\xff\xd9")
    return data[:end] + data[last_scan:end] * repeats + data[end:]


def tiff_many_pages(pages: int = 100_000) -> bytes:
    """A little-endian TIFF of `pages` 1x1 greyscale pages: counting its frames walks every page."""
    entries = ((256, 3, 1), (257, 3, 1), (258, 3, 8), (259, 3, 1), (262, 3, 1), (273, 4, None), (277, 3, 1),
               (278, 3, 1), (279, 4, 1))
    ifd_size = 2 + 12 * len(entries) + 4
    pixel_offset = 8
    first_ifd = 12
    out = bytearray(b"II*\x00" + struct.pack("<I", first_ifd) + b"\x80\x00\x00\x00")
    for page in range(pages):
        start = first_ifd + page * ifd_size
        next_ifd = start + ifd_size if page < pages - 1 else 0
        out += struct.pack("<H", len(entries))
        for tag, kind, value in entries:
            value = pixel_offset if value is None else value
            out += struct.pack("<HHI", tag, kind, 1) + (struct.pack("<HH", value, 0) if kind == 3 else
                                                        struct.pack("<I", value))
        out += struct.pack("<I", next_ifd)
    return bytes(out)


def jpeg_cut_with_end_marker(keep: float = 0.1, side: int = 512) -> bytes:
    """A baseline JPEG cut to `keep` of its bytes, with an end-of-image marker appended so it looks whole."""
    data = encode(gradient(side, side), "JPEG", quality=95)
    return data[:int(len(data) * keep)] + b"\xff\xd9"


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def apng_claiming_frames(frames: int = 2**31) -> bytes:
    """A 1x1 PNG whose animation-control chunk claims `frames` frames and holds one."""
    png = encode(Image.new("RGB", (1, 1), (9, 9, 9)), "PNG")
    actl = _png_chunk(b"acTL", struct.pack(">II", frames, 0))
    ihdr_end = 8 + 25
    return png[:ihdr_end] + actl + png[ihdr_end:]


def batch_body(files: list[bytes], boundary: str = "hostile-boundary", newline: bytes = b"\r\n") -> bytes:
    """A multipart/form-data body with every file in a field named `image`."""
    out = io.BytesIO()
    for index, data in enumerate(files):
        out.write(b"--" + boundary.encode() + newline)
        out.write(f'Content-Disposition: form-data; name="image"; filename="f{index}.bin"'.encode() + newline)
        out.write(b"Content-Type: application/octet-stream" + newline + newline)
        out.write(data + newline)
    out.write(b"--" + boundary.encode() + b"--" + newline)
    return out.getvalue()
