"""Decoding uploads: type from the bytes, bomb guard, orientation, and every mode ends as 8-bit RGB."""
import io
import os
import time

import numpy as np
import pytest
from PIL import Image, ImageOps

from tests import hostile_images as hostile
from tests import images
from utils.errors import ImageTooLarge, InvalidImage, UnsupportedImageType
from utils.imaging.decoding import MAX_COUNTED_FRAMES, decode_image, sniff_format


@pytest.mark.parametrize("data, fmt", [
    (images.jpeg(), "JPEG"), (images.png(), "PNG"), (images.animated_gif(), "GIF"),
    (images.encode(images.gradient(), "WEBP"), "WEBP"), (images.encode(images.gradient(), "BMP"), "BMP"),
    (images.encode(images.gradient(), "TIFF"), "TIFF")])
def test_format_is_judged_from_the_bytes(data, fmt):
    assert sniff_format(data) == fmt
    decoded = decode_image(data)
    assert decoded.format == fmt and decoded.image.mode == "RGB"


@pytest.mark.parametrize("data", [images.SVG, images.HTML, images.TEXT, os.urandom(2048)])
def test_non_images_are_unsupported(data):
    with pytest.raises(UnsupportedImageType):
        decode_image(data)


def test_empty_bytes_are_invalid():
    with pytest.raises(InvalidImage, match="empty"):
        decode_image(b"")


@pytest.mark.parametrize("data", [images.truncated(images.jpeg(256, 256)), images.truncated(images.png(256, 256)),
                                  b"\xff\xd8\xff" + os.urandom(500)])
def test_truncated_or_corrupt_images_are_invalid_without_internals(data):
    with pytest.raises(InvalidImage) as info:
        decode_image(data)
    assert "Traceback" not in info.value.message and "PIL" not in info.value.message


def test_decompression_bomb_header_is_refused_before_decoding():
    with pytest.raises(ImageTooLarge, match="pixels"):
        decode_image(images.png_bomb_header())


def test_pixel_limit_is_configurable():
    with pytest.raises(ImageTooLarge):
        decode_image(images.png(100, 100), max_pixels=5000)


@pytest.mark.parametrize("data", [images.cmyk_jpeg(), images.png(mode="L"), images.png_16bit_grey(),
                                  images.png_with_alpha(), images.png(mode="P"), images.png(1, 1)])
def test_every_mode_becomes_rgb(data):
    decoded = decode_image(data)
    assert decoded.image.mode == "RGB"
    assert decoded.image.getextrema() != ((0, 0), (0, 0), (0, 0)) or decoded.width == 1


def test_16_bit_grey_keeps_its_range():
    low, high = decode_image(images.png_16bit_grey()).image.convert("L").getextrema()
    assert low == 0 and high >= 200


def test_alpha_is_flattened_onto_white():
    decoded = decode_image(images.encode(images.gradient(8, 8).convert("RGBA").point(lambda v: 0), "PNG"))
    assert decoded.image.getpixel((0, 0)) == (255, 255, 255)


def test_exif_orientation_is_applied_and_the_displayed_size_reported():
    decoded = decode_image(images.exif_rotated_jpeg())
    assert decoded.image.size == (20, 60)
    assert (decoded.width, decoded.height) == (20, 60)  # as displayed: a portrait phone photo is reported portrait


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_every_exif_orientation_matches_pillows_transpose(orientation, fmt):
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = images.encode(images.gradient(24, 10), fmt, exif=exif.tobytes(), **({"quality": 95} if fmt == "JPEG" else {}))
    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data)).convert("RGB")))
    decoded = decode_image(data)
    assert np.array_equal(decoded.pixels, expected)
    assert (decoded.width, decoded.height) == (expected.shape[1], expected.shape[0])


@pytest.mark.parametrize("options", [{}, {"progressive": True}, {"subsampling": 0}, {"subsampling": 1}])
@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_jpeg_pixels_are_the_ones_pillow_decodes(mode, options):
    """Training data was decoded by Pillow: the service's JPEG decoder must hand the models the same pixels."""
    data = images.encode(images.gradient(97, 61).convert(mode), "JPEG", quality=85, **options)
    expected = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    assert np.array_equal(decode_image(data).pixels, expected)


def test_a_jpeg_cut_short_with_an_end_marker_is_invalid():
    with pytest.raises(InvalidImage, match="truncated or corrupt"):
        decode_image(hostile.jpeg_cut_with_end_marker(keep=0.1))


def test_a_progressive_jpeg_with_thousands_of_scans_is_refused_before_decoding():
    started = time.perf_counter()
    with pytest.raises(InvalidImage, match="scans"):
        decode_image(hostile.progressive_scan_bomb(repeats=5000))
    assert time.perf_counter() - started < 1.0  # refused from a count of its markers, not after decoding them


def test_ordinary_progressive_jpegs_are_not_mistaken_for_scan_bombs():
    decoded = decode_image(images.jpeg(800, 600, progressive=True))
    assert decoded.pixels.shape == (600, 800, 3)


def test_frames_are_counted_not_read_from_a_header():
    assert decode_image(hostile.apng_claiming_frames(2**31)).frames == 1


def test_frame_counting_stops_at_its_bound():
    decoded = decode_image(hostile.tiff_many_pages(pages=MAX_COUNTED_FRAMES + 50))
    assert decoded.frames == MAX_COUNTED_FRAMES and decoded.pixels.shape == (1, 1, 3)


@pytest.mark.parametrize("build", [hostile.lossless_webp, hostile.png_16bit_grey, hostile.png_rgba,
                                   hostile.png_palette_transparent, hostile.tiff_float32],
                         ids=["webp", "png16", "rgba", "palette-alpha", "float-tiff"])
def test_what_cannot_be_decoded_within_the_memory_budget_is_refused_from_its_header(build):
    data = build(side=2000)
    with pytest.raises(ImageTooLarge, match="MiB"):
        decode_image(data, max_decode_bytes=8 * 2**20)
    assert decode_image(data).pixels.shape == (2000, 2000, 3)


def test_a_jpeg_too_large_for_the_budget_is_decoded_at_a_reduced_scale():
    decoded = decode_image(images.jpeg(1600, 1200), max_decode_bytes=4 * 2**20)
    assert decoded.scale == 2 and decoded.pixels.shape == (600, 800, 3)
    assert (decoded.width, decoded.height) == (1600, 1200)


def test_strip_conversion_equals_a_whole_image_conversion():
    """Modes converted strip by strip (16-bit grey, alpha) give the pixels a one-shot conversion gives."""
    grey = np.tile(np.arange(0, 65536, 16, dtype=np.uint16), (3, 1)).reshape(-1, 1024)[:2100]
    data = images.encode(Image.fromarray(grey), "PNG")
    expected = np.clip(grey / 65535.0 * 255.0 + 0.5, 0, 255).astype(np.uint8)
    assert np.array_equal(decode_image(data).pixels[..., 0], expected)


def test_animated_gif_uses_its_first_frame():
    decoded = decode_image(images.animated_gif())
    assert decoded.frames == 2 and decoded.image.size == (32, 32)


@pytest.mark.parametrize("size", [(2048, 1536), (1001, 777), (512, 512), (300, 200), (32, 32)])
def test_jpegs_decode_at_full_resolution_for_the_photo_tiles(size):
    """No DCT-scaled (draft) decoding within the memory budget: the photo models must see the pixels the file
    holds."""
    decoded = decode_image(images.jpeg(*size))
    assert decoded.image.size == size and (decoded.width, decoded.height) == size
