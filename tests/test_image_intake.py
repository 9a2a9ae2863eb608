"""Decoding uploads: type from the bytes, bomb guard, orientation, and every mode ends as 8-bit RGB."""
import os

import pytest

from tests import images
from utils.errors import ImageTooLarge, InvalidImage, UnsupportedImageType
from utils.image_io import decode_image, sniff_format


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


def test_exif_orientation_is_applied():
    decoded = decode_image(images.exif_rotated_jpeg())
    assert decoded.image.size == (20, 60)
    assert (decoded.width, decoded.height) == (60, 20)  # facts about the file as stored


def test_animated_gif_uses_its_first_frame():
    decoded = decode_image(images.animated_gif())
    assert decoded.frames == 2 and decoded.image.size == (32, 32)


@pytest.mark.parametrize("size", [(2048, 1536), (1001, 777), (512, 512), (300, 200), (32, 32)])
def test_jpegs_decode_at_full_resolution_for_the_photo_tiles(size):
    """No DCT-scaled (draft) decoding: the photo models must see the pixels the file holds."""
    decoded = decode_image(images.jpeg(*size))
    assert decoded.image.size == size and (decoded.width, decoded.height) == size
