"""Safe image decoding, shared by training data loading and the service's image intake.

Type is judged from the bytes, never the file name. Everything a decode will cost is judged from the header before
any pixel is decoded: the pixel count (decompression-bomb guard), the memory the decode and the conversion to RGB
will hold (`max_decode_bytes`), and for progressive JPEGs the number of scans, each of which is a full pass over the
image. EXIF orientation is applied and the reported width and height are the displayed ones; every mode ends as
8-bit RGB in one numpy array.

JPEGs are decoded with simplejpeg (libjpeg-turbo) in strict mode, which, unlike Pillow, refuses a JPEG whose
entropy-coded data ends early: a file cut short with an end-of-image marker appended used to decode to a grey
picture and get a confident verdict. Its pixels are identical to Pillow's (tests/utils/imaging/test_decoding.py compares them).
A JPEG too large for the memory budget is decoded at a reduced DCT scale (1/2, 1/4 or 1/8), which costs a fraction
of the memory and time of decoding it whole; other formats cannot be decoded smaller than they are, so what does not
fit is refused with ImageTooLarge.
"""
from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
import simplejpeg
from PIL import Image

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
SUPPORTED_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF", "HEIF", "AVIF")
MEDIA_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "GIF": "image/gif", "WEBP": "image/webp",
               "BMP": "image/bmp", "TIFF": "image/tiff", "HEIF": "image/heic", "AVIF": "image/avif"}
# ISO base media files (HEIF, AVIF) name their kind in the `ftyp` box: a major brand, then compatible brands.
_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs"}
_AVIF_BRANDS = {b"avif", b"avis"}
_GENERIC_BRANDS = {b"mif1", b"msf1", b"miaf"}

try:  # HEIF/HEIC (iPhone photos) through pillow-heif; Pillow reads AVIF itself
    import pillow_heif

    pillow_heif.register_heif_opener()
except ImportError:  # pragma: no cover - a requirement; without it HEIF uploads get a clear 415
    pillow_heif = None

DEFAULT_MAX_PIXELS = 64_000_000
DEFAULT_MAX_DECODE_BYTES = 192 * 2**20
# A progressive JPEG's decoder makes one pass over the whole coefficient buffer per scan (about 0.75 ms per scan and
# megapixel on a 2-core EPYC): bound the count, and the count times the size. Encoders write 6-12 scans.
MAX_JPEG_SCANS = 100
MAX_JPEG_SCAN_MEGAPIXELS = 1200
# Frames are counted by walking them, never read from a header (an APNG can claim 2**31 frames and hold one). Each
# step can decode a frame, so the walk stops at 100 frames or 40 megapixels of frames, whichever comes first (but
# always looks for a second frame): `frames` is a lower bound, exact for short animations.
MAX_COUNTED_FRAMES = 100
MAX_COUNTED_FRAME_PIXELS = 40_000_000
_STRIP_PIXELS = 1 << 20  # conversions to RGB work on strips of about a megapixel, never on a full-size float copy

# Bytes per pixel Pillow holds for a decoded image of each mode, plus what its decoder holds beside it.
_MODE_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2, "I;16N": 2, "LA": 4, "PA": 4, "La": 4}
# libwebp's own RGBA frame and its copy handed to Pillow (measured: 18-19 bytes a pixel in all). HEIF and AVIF
# measured 5.8 and 5.3 bytes a pixel in all for 12-megapixel photos, within the 7 of a Pillow image plus the output.
_DECODER_BYTES = {"WEBP": 12}
_RGB_BYTES = 3  # the output array


@dataclass
class DecodedImage:
    """One decoded upload: its pixels (H x W x 3 uint8, displayed orientation) plus facts about the original.

    `width` and `height` are the original's, as displayed (after EXIF orientation); `scale` is the DCT reduction a
    large JPEG was decoded at (1 = full size), so the pixels are `width // scale` wide, about.
    """

    pixels: np.ndarray
    format: str
    width: int
    height: int
    frames: int
    scale: int = 1

    @property
    def image(self) -> Image.Image:
        """The pixels as a Pillow RGB image (a copy)."""
        return Image.fromarray(self.pixels, "RGB")


def _iso_media_format(data: bytes) -> str | None:
    if data[4:8] != b"ftyp":
        return None
    size = int.from_bytes(data[:4], "big")
    brands = [data[8:12]] + [data[i:i + 4] for i in range(16, min(max(size, 16), 256), 4)]
    if any(brand in _AVIF_BRANDS for brand in brands):
        return "AVIF"
    if any(brand in _HEIF_BRANDS for brand in brands) or brands[0] in _GENERIC_BRANDS:
        return "HEIF" if pillow_heif is not None else None
    return None


def sniff_format(data: bytes) -> str | None:
    """The image format named by the leading bytes, or None."""
    iso = _iso_media_format(data)
    if iso:
        return iso
    for magic, offset, name in _SIGNATURES:
        if data[offset:offset + len(magic)] == magic:
            if name == "WEBP" and data[:4] != b"RIFF":
                continue
            return name
    return None


def _grey_scale_divisor(image: Image.Image) -> float | None:
    """For 16-bit, 32-bit and float greys: the value that maps to white, judged over the whole image."""
    if image.mode.startswith("I;16"):
        return 65535.0
    if image.mode in ("I", "F"):
        return 65535.0 if image.getextrema()[1] > 255 else 255.0
    return None


def _to_rgb(image: Image.Image, grey_divisor: float | None) -> np.ndarray:
    """One strip of any PIL mode -> 8-bit RGB. Transparency is flattened onto white, 16-bit and float greys are
    rescaled by `grey_divisor`."""
    if grey_divisor is not None:
        array = np.asarray(image, dtype=np.float64)
        grey = np.clip(array / grey_divisor * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if image.mode == "RGB":
        return np.asarray(image)
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(background, rgba).convert("RGB"))
    return np.asarray(image.convert("RGB"))


def _frame_to_rgb(image: Image.Image) -> np.ndarray:
    """The loaded frame as one H x W x 3 array, converted strip by strip so no full-size intermediate exists."""
    width, height = image.size
    if image.mode == "P":
        # Each pixel's colour depends on its index alone: convert the 256 indices once, with the very same code,
        # and look every pixel up (a 64-megapixel palette PNG with transparency: 1.9 s by strips, 0.5 s so).
        indices = Image.new("P", (256, 1))
        indices.putdata(range(256))
        indices.putpalette(image.getpalette(rawmode="RGBA") or [], rawmode="RGBA")
        indices.info = dict(image.info)
        lookup = _to_rgb(indices, None)[0]
        return lookup[np.asarray(image)]
    grey_divisor = _grey_scale_divisor(image)
    out = np.empty((height, width, 3), dtype=np.uint8)
    rows = max(1, _STRIP_PIXELS // width)
    for top in range(0, height, rows):
        bottom = min(height, top + rows)
        out[top:bottom] = _to_rgb(image.crop((0, top, width, bottom)), grey_divisor)
    return out


def _count_frames(image: Image.Image) -> int:
    """Frames counted by seeking, within the bounds above; the image is left on frame 0."""
    if not getattr(image, "is_animated", False) and image.format != "TIFF":
        return 1
    width, height = image.size
    limit = min(MAX_COUNTED_FRAMES, max(2, MAX_COUNTED_FRAME_PIXELS // (width * height)))
    count = 1
    try:
        while count < limit:
            image.seek(count)
            count += 1
    except Exception:  # EOFError at the true end; a frame the header promised but the file lacks ends it too
        pass
    image.seek(0)
    return count


_ORIENTATION_OPS = {  # EXIF orientation -> the numpy view that displays the stored pixels upright
    2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, 2), 6: lambda a: np.rot90(a, -1), 7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),
    8: lambda a: np.rot90(a, 1),
}


def _orientation(image: Image.Image) -> int:
    try:
        value = image.getexif().get(0x0112, 1)
    except Exception:  # a malformed EXIF block is not a reason to refuse the picture
        return 1
    return value if value in _ORIENTATION_OPS else 1


def _orient(pixels: np.ndarray, orientation: int) -> np.ndarray:
    if orientation == 1:
        return pixels
    return np.ascontiguousarray(_ORIENTATION_OPS[orientation](pixels))


def _mib(count: float) -> str:
    return f"{count / 2**20:,.0f} MiB"


def _check_jpeg_scans(data: bytes, pixels: int) -> None:
    # 0xFFDA starts a scan. Entropy-coded data escapes every 0xFF, so the count is exact apart from scans of an
    # embedded thumbnail, which only make it an upper bound.
    scans = data.count(b"\xff\xda")
    megapixels = max(1.0, pixels / 1e6)
    if scans > MAX_JPEG_SCANS or scans * megapixels > MAX_JPEG_SCAN_MEGAPIXELS:
        allowed = min(MAX_JPEG_SCANS, int(MAX_JPEG_SCAN_MEGAPIXELS / megapixels))
        raise InvalidImage(f"the JPEG has {scans:,} scans; at most {allowed:,} are decoded at "
                           f"{pixels / 1e6:.1f} megapixels")


def _jpeg_samples_per_pixel(image: Image.Image) -> float:
    """Stored samples per pixel over all components: 1.5 for 4:2:0 colour, 3 for 4:4:4, 1 for grey."""
    layers = getattr(image, "layer", None) or []
    try:
        h_max = max(h for _, h, _, _ in layers)
        v_max = max(v for _, _, v, _ in layers)
        return sum(h * v for _, h, v, _ in layers) / (h_max * v_max)
    except (TypeError, ValueError, ZeroDivisionError):
        return 4.0  # unknown: as many as a CMYK file holds


def _jpeg_scale(image: Image.Image, pixels: int, max_decode_bytes: int) -> int:
    """The smallest DCT reduction (1, 2, 4 or 8) whose decode fits the memory budget."""
    progressive = bool(image.info.get("progressive") or image.info.get("progression"))
    # A progressive decode holds every coefficient of the full-size image, 2 bytes per stored sample, whatever
    # the output scale; the output is 3 bytes a pixel, and as much again while EXIF orientation is applied.
    fixed = 2 * _jpeg_samples_per_pixel(image) * pixels if progressive else 0
    for scale in (1, 2, 4, 8):
        if fixed + 2 * _RGB_BYTES * pixels / scale**2 <= max_decode_bytes:
            return scale
    raise ImageTooLarge(f"decoding this {image.width}x{image.height} progressive JPEG needs about "
                        f"{_mib(fixed + 2 * _RGB_BYTES * pixels / 64)}; the limit is {_mib(max_decode_bytes)}")


def _decode_jpeg(data: bytes, image: Image.Image, max_decode_bytes: int) -> tuple[np.ndarray, int]:
    width, height = image.size
    _check_jpeg_scans(data, width * height)
    scale = _jpeg_scale(image, width * height, max_decode_bytes)
    if image.mode in ("L", "RGB", "YCbCr"):
        try:
            # libjpeg-turbo decodes at the smallest DCT scale whose size is at least the minimum: 1/scale exactly.
            return simplejpeg.decode_jpeg(data, "rgb", strict=True, min_height=-(-height // scale),
                                          min_width=-(-width // scale)), scale
        except ValueError:
            raise InvalidImage("the JPEG image could not be decoded (truncated or corrupt)") from None
    # CMYK and YCCK, which libjpeg-turbo will not turn into RGB: Pillow does, at the same reduced scale.
    if scale > 1:
        image.draft(image.mode, (width // scale, height // scale))
    image.load()
    return _frame_to_rgb(image), scale


def _decode_with_pillow(fmt: str, image: Image.Image, max_decode_bytes: int) -> np.ndarray:
    width, height = image.size
    held = _MODE_BYTES.get(image.mode, 4) + _DECODER_BYTES.get(fmt, 0) + _RGB_BYTES
    if held * width * height > max_decode_bytes:
        raise ImageTooLarge(f"decoding this {width}x{height} {fmt} needs about {_mib(held * width * height)}; the "
                            f"limit is {_mib(max_decode_bytes)}")
    image.load()
    return _frame_to_rgb(image)


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS,
                 max_decode_bytes: int = DEFAULT_MAX_DECODE_BYTES) -> DecodedImage:
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
            frames, scale = 1, 1
            if fmt == "JPEG":
                pixels, scale = _decode_jpeg(data, image, max_decode_bytes)
            else:
                frames = _count_frames(image)
                pixels = _decode_with_pillow(fmt, image, max_decode_bytes)
            orientation = _orientation(image)  # after decoding: a PNG's eXIf chunk may follow its pixel data
            del image
            pixels = _orient(pixels, orientation)
    except (InvalidImage, ImageTooLarge):
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageTooLarge(f"the image exceeds the limit of {max_pixels:,} pixels") from None
    except Exception:  # PIL raises many types on malformed input; none of their text reaches a client
        raise InvalidImage(f"the {fmt} image could not be decoded (truncated or corrupt)") from None
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    return DecodedImage(pixels=pixels, format=fmt, width=width, height=height, frames=frames, scale=scale)
