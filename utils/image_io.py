"""Safe image decoding, shared by training data loading and the service's image intake.

Type is judged from the bytes, never the file name; pixel counts are checked from the header before any pixel is
decoded (decompression-bomb guard); EXIF orientation is applied; every mode ends as 8-bit RGB.
"""
from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

from utils.errors import ImageTooLarge, InvalidImage, UnsupportedImageType

# Magic numbers of the formats we accept, checked against the first bytes.
_SIGNATURES: tuple[tuple[bytes, int, str], ...] = (
    (b"\xff\xd8\xff", 0, "JPEG"),
    (b"\x89PNG\r\n\x1a\n", 0, "PNG"),
    (b"GIF87a", 0, "GIF"),
    (b"GIF89a", 0, "GIF"),
    (b"WEBP", 8, "WEBP"),
    (b"BM", 0, "BMP"),
    (b"II*\x00", 0, "TIFF"),
    (b"MM\x00*", 0, "TIFF"),
)
SUPPORTED_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF")
MEDIA_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "GIF": "image/gif", "WEBP": "image/webp",
               "BMP": "image/bmp", "TIFF": "image/tiff"}

# JPEGs are decoded at full resolution: the photo models score native-resolution tiles, so a reduced DCT scale
# (PIL's draft mode, used while every upload was shrunk to 32 px) would hand them pixels no camera produced.
DEFAULT_MAX_PIXELS = 64_000_000


@dataclass
class DecodedImage:
    """One decoded upload: the RGB image everything downstream uses, plus facts about the original."""

    image: Image.Image
    format: str
    width: int
    height: int
    frames: int


def sniff_format(data: bytes) -> str | None:
    """The image format named by the leading bytes, or None."""
    for magic, offset, name in _SIGNATURES:
        if data[offset:offset + len(magic)] == magic:
            if name == "WEBP" and data[:4] != b"RIFF":
                continue
            return name
    return None


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode -> 8-bit RGB. Transparency is flattened onto white, 16-bit and float greys are rescaled."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        high = 65535.0 if image.mode.startswith("I;16") or array.max(initial=0) > 255 else 255.0
        grey = np.clip(array / high * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> DecodedImage:
    """Decode image bytes safely to RGB; raise InvalidImage, UnsupportedImageType or ImageTooLarge."""
    if not data:
        raise InvalidImage("the image is empty (0 bytes)")
    fmt = sniff_format(data)
    if fmt is None:
        raise UnsupportedImageType(
            f"not a supported image; send one of: {', '.join(SUPPORTED_FORMATS)}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=[fmt])
            width, height = image.size
            if width < 1 or height < 1:
                raise InvalidImage("the image has no pixels")
            if width * height > max_pixels:
                raise ImageTooLarge(
                    f"the image is {width}x{height} pixels; the limit is {max_pixels:,} pixels")
            frames = getattr(image, "n_frames", 1)
            if frames > 1:
                image.seek(0)
            image.load()
            image = ImageOps.exif_transpose(image)
            rgb = _to_rgb(image)
    except (InvalidImage, ImageTooLarge):
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageTooLarge(f"the image exceeds the limit of {max_pixels:,} pixels") from None
    except Exception:  # PIL raises many types on malformed input; none of their text reaches a client
        raise InvalidImage(f"the {fmt} image could not be decoded (truncated or corrupt)") from None
    return DecodedImage(image=rgb, format=fmt, width=width, height=height, frames=frames)
