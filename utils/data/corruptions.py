"""Common image corruptions on the uint8 NHWC arrays the data loader gives, for robustness sweeps.

Every function takes uint8 (N,H,W,3) images and returns a new uint8 array of the same shape; the input is never
changed. Only Gaussian noise is random, and it draws from the seed it is given, so a sweep is repeatable.
"""
from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image


def _as_images(images: np.ndarray | torch.Tensor) -> np.ndarray:
    array = images.numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if array.dtype != np.uint8 or array.ndim != 4 or array.shape[-1] != 3:
        raise ValueError(f"expected uint8 (N,H,W,3) images, got {array.dtype} {array.shape}")
    return array


def _to_uint8(values: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def jpeg_recompress(images: np.ndarray | torch.Tensor, quality: int) -> np.ndarray:
    """Encode each image as a JPEG at `quality` (4:2:0 chroma subsampling, as common encoders do) and decode it."""
    array = _as_images(images)
    out = np.empty_like(array)
    for i, image in enumerate(array):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="JPEG", quality=int(quality), subsampling="4:2:0")
        buffer.seek(0)
        with Image.open(buffer) as decoded:
            out[i] = np.asarray(decoded.convert("RGB"))
    return out


def rescale(images: np.ndarray | torch.Tensor, factor: float) -> np.ndarray:
    """Downscale by `factor` and back up to the original size, both with bicubic resampling."""
    array = _as_images(images)
    height, width = array.shape[1:3]
    small = (max(1, round(width * factor)), max(1, round(height * factor)))
    out = np.empty_like(array)
    for i, image in enumerate(array):
        reduced = Image.fromarray(image).resize(small, Image.Resampling.BICUBIC)
        out[i] = np.asarray(reduced.resize((width, height), Image.Resampling.BICUBIC))
    return out


def gaussian_kernel(sigma: float) -> np.ndarray:
    """Normalised 1-D Gaussian weights over +-ceil(3 sigma) pixels."""
    radius = max(1, math.ceil(3 * sigma))
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    weights = np.exp(-offsets ** 2 / (2 * sigma ** 2))
    return weights / weights.sum()


def gaussian_blur(images: np.ndarray | torch.Tensor, sigma: float) -> np.ndarray:
    """Separable Gaussian blur with standard deviation `sigma` pixels, edges mirrored."""
    array = _as_images(images)
    kernel = gaussian_kernel(sigma)
    radius = len(kernel) // 2
    if radius >= min(array.shape[1:3]):
        raise ValueError(f"sigma {sigma} is too large for {array.shape[1]}x{array.shape[2]} images")
    values = array.astype(np.float64)
    for axis in (1, 2):
        pad = [(0, 0)] * 4
        pad[axis] = (radius, radius)
        padded = np.pad(values, pad, mode="reflect")
        length = values.shape[axis]
        values = sum(weight * np.take(padded, np.arange(k, k + length), axis=axis) for k, weight in enumerate(kernel))
    return _to_uint8(values)


def gaussian_noise(images: np.ndarray | torch.Tensor, sigma: float, seed: int) -> np.ndarray:
    """Add i.i.d. Gaussian noise of standard deviation `sigma` in pixel units of [0,1], drawn from `seed`."""
    array = _as_images(images)
    noise = np.random.default_rng(seed).standard_normal(array.shape) * (sigma * 255.0)
    return _to_uint8(array.astype(np.float64) + noise)


@dataclass(frozen=True)
class Corruption:
    """One corruption at one severity; `severity` orders a family's members from mild (1) to strong."""

    family: str
    severity: int
    parameter: float
    label: str  # how the parameter reads in a report: "q75", "x0.5", "1px", "2/255"
    function: Callable[..., np.ndarray]
    seeded: bool = False

    @property
    def name(self) -> str:
        """A stable key such as `jpeg-q75` or `noise-2/255`."""
        return f"{self.family}-{self.label}"

    def apply(self, images: np.ndarray | torch.Tensor, seed: int = 0) -> np.ndarray:
        """The corrupted copy of `images` (the seed matters only for random corruptions)."""
        if self.seeded:
            return self.function(images, self.parameter, seed)
        return self.function(images, self.parameter)


def _family(name: str, function: Callable[..., np.ndarray], parameters: list[float], labels: list[str],
            seeded: bool = False) -> list[Corruption]:
    return [Corruption(name, severity, parameter, label, function, seeded)
            for severity, (parameter, label) in enumerate(zip(parameters, labels), start=1)]


CORRUPTIONS: tuple[Corruption, ...] = tuple(
    _family("jpeg", jpeg_recompress, [95, 90, 75, 50, 30], ["q95", "q90", "q75", "q50", "q30"])
    + _family("rescale", rescale, [0.75, 0.5], ["x0.75", "x0.5"])
    + _family("blur", gaussian_blur, [0.5, 1.0], ["0.5px", "1px"])
    + _family("noise", gaussian_noise, [2 / 255, 5 / 255], ["2/255", "5/255"], seeded=True)
)

FAMILY_DESCRIPTIONS = {
    "jpeg": "JPEG re-compression at the given quality (Pillow, 4:2:0 chroma subsampling)",
    "rescale": "bicubic down-scaling by the given factor, then bicubic up-scaling back to the input size",
    "blur": "Gaussian blur with the given standard deviation in pixels (separable, +-3 sigma, mirrored edges)",
    "noise": "additive Gaussian noise with the given standard deviation in [0,1] pixel units, seeded, rounded "
             "and clipped to uint8",
}
