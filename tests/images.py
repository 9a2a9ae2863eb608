"""Image bytes made on the fly for intake and API tests: every awkward kind of upload a service meets."""
from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def gradient(width: int = 64, height: int = 48, mode: str = "RGB") -> Image.Image:
    """A deterministic colourful test picture."""
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1), (x + y) % 256], -1)
    return Image.fromarray(rgb.astype(np.uint8), "RGB").convert(mode)


def jpeg(width: int = 64, height: int = 48, **options) -> bytes:
    return encode(gradient(width, height), "JPEG", quality=90, **options)


def png(width: int = 64, height: int = 48, mode: str = "RGB") -> bytes:
    return encode(gradient(width, height, mode), "PNG")


def png_16bit_grey() -> bytes:
    array = (np.arange(32 * 32, dtype=np.uint16).reshape(32, 32) * 60).astype(np.uint16)
    return encode(Image.fromarray(array), "PNG")  # uint16 array -> mode I;16


def png_with_alpha() -> bytes:
    image = gradient(40, 40).convert("RGBA")
    image.putalpha(128)
    return encode(image, "PNG")


def cmyk_jpeg() -> bytes:
    return encode(gradient(40, 40).convert("CMYK"), "JPEG")


def animated_gif() -> bytes:
    frames = [gradient(32, 32).convert("P"), Image.new("P", (32, 32), 3)]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def exif_rotated_jpeg() -> bytes:
    """A 60x20 landscape JPEG whose EXIF says 'rotate 90': it must be served as 20x60 portrait."""
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 CW
    return encode(gradient(60, 20), "JPEG", exif=exif.tobytes())


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bomb_header(width: int = 100_000, height: int = 100_000) -> bytes:
    """A valid PNG header claiming width x height pixels, with almost no data behind it."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 16))
            + _png_chunk(b"IEND", b""))


def truncated(data: bytes, keep: float = 0.5) -> bytes:
    return data[: int(len(data) * keep)]


SVG = b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect/></svg>'
HTML = b"<!doctype html><html><body><img src=x onerror=alert(1)></body></html>"
TEXT = b"just some text, not an image\n"
