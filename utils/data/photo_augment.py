"""What the photo models are taught to ignore: resizing both ways, blur and JPEG re-compression, on both classes.

The corpus's classes differ in compression and resolution history (docs/photo-data.md measures it): most REAL
crops were JPEG-compressed twice and at high quality, a third of FAKE crops never before; some sources were
upscaled. A detector can learn those histories instead of generation artefacts (DIRE's results fell to JPEG), so
every training crop goes through the same random chain, whatever its class, in the order the web applies it:

    resize (p_resize; factor log-uniform in resize_range, sometimes a different factor per axis)
      -> Gaussian blur (p_blur; sigma uniform in blur_sigma)          CNNDetection's blur + JPEG
      -> JPEG re-save (p_jpeg; quality uniform in jpeg_quality, 4:2:0 or 4:4:4)

The chain runs on the whole 224 px crop, before a tile is cut out of it, so the tile's position against the JPEG
8x8 grid and the interpolation phase are random too. Validation and serving never augment.
"""
from __future__ import annotations

import io
import math
from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image, ImageFilter

_RESAMPLERS = (Image.Resampling.BILINEAR, Image.Resampling.BICUBIC, Image.Resampling.LANCZOS,
               Image.Resampling.BOX)


@dataclass(frozen=True)
class AugmentSettings:
    """Probabilities and ranges of the chain; config models.<photo model>.train.augment."""

    p_resize: float = 0.5
    resize_range: tuple[float, float] = (0.5, 2.0)
    p_anisotropic: float = 0.3  # share of resizes with an independent factor per axis (stretched uploads)
    p_blur: float = 0.2
    blur_sigma: tuple[float, float] = (0.2, 1.5)
    p_jpeg: float = 0.6
    jpeg_quality: tuple[int, int] = (50, 98)

    @classmethod
    def from_config(cls, section: dict | None) -> "AugmentSettings":
        """Settings from a config mapping; missing keys keep their defaults, unknown keys are refused."""
        section = dict(section or {})
        unknown = set(section) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown augmentation settings {sorted(unknown)}")
        for key in ("resize_range", "blur_sigma", "jpeg_quality"):
            if key in section:
                section[key] = tuple(section[key])
        return cls(**section)

    def to_metadata(self) -> dict:
        """JSON-ready form for a checkpoint's training metadata."""
        return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()}


def _random_resize(image: Image.Image, settings: AugmentSettings, min_side: int,
                   rng: np.random.Generator) -> Image.Image:
    low, high = (math.log(v) for v in settings.resize_range)
    fx = math.exp(rng.uniform(low, high))
    fy = math.exp(rng.uniform(low, high)) if rng.random() < settings.p_anisotropic else fx
    width = max(min_side, round(image.width * fx))
    height = max(min_side, round(image.height * fy))
    return image.resize((width, height), _RESAMPLERS[rng.integers(len(_RESAMPLERS))])


def _jpeg_resave(image: Image.Image, settings: AugmentSettings, rng: np.random.Generator) -> Image.Image:
    buffer = io.BytesIO()
    quality = int(rng.integers(settings.jpeg_quality[0], settings.jpeg_quality[1] + 1))
    image.save(buffer, format="JPEG", quality=quality, subsampling=2 if rng.random() < 0.75 else 0)
    buffer.seek(0)
    with Image.open(buffer) as reloaded:
        return reloaded.convert("RGB")


def augment_photo(image: Image.Image, settings: AugmentSettings, min_side: int,
                  rng: np.random.Generator) -> Image.Image:
    """One random draw of the chain on an RGB image; the result keeps both sides >= `min_side`."""
    if rng.random() < settings.p_resize:
        image = _random_resize(image, settings, min_side, rng)
    if rng.random() < settings.p_blur:
        image = image.filter(ImageFilter.GaussianBlur(float(rng.uniform(*settings.blur_sigma))))
    if rng.random() < settings.p_jpeg:
        image = _jpeg_resave(image, settings, rng)
    return image


def random_region(array: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """A uniformly placed `size` x `size` window of an HxWx3 array (reflect-padded when the array is smaller)."""
    height, width = array.shape[:2]
    if height < size or width < size:
        pad_y, pad_x = max(0, size - height), max(0, size - width)
        array = np.pad(array, ((0, pad_y), (0, pad_x), (0, 0)), mode="reflect")
        height, width = array.shape[:2]
    y = int(rng.integers(0, height - size + 1))
    x = int(rng.integers(0, width - size + 1))
    return array[y:y + size, x:x + size]
