"""The one preprocessing path shared by training, evaluation and serving.

A model's checkpoint metadata names its input size, mean and std (timm's habit); everything here is derived from
that, so training and serving cannot drift apart:
- `fit_to_input`: a decoded RGB PIL image -> uint8 HxWx3 array at the model's input size;
- `normalize_batch`: uint8 NHWC -> normalised float NCHW tensor, the model's input.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from models import IMAGENET_MEAN, IMAGENET_STD  # the architectures' default normalisation (re-exported)

CLASS_NAMES = ("REAL", "FAKE")  # index 1, FAKE, is the positive class everywhere
FAKE_INDEX = 1


@dataclass(frozen=True)
class PreprocessSpec:
    """What a model expects at its input, as recorded in its checkpoint."""

    input_size: int
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    @classmethod
    def from_metadata(cls, metadata: dict) -> "PreprocessSpec":
        """Read the preprocessing fields from a checkpoint's metadata."""
        return cls(int(metadata["input_size"]), tuple(metadata["mean"]), tuple(metadata["std"]))

    def to_metadata(self) -> dict:
        """The fields to store in a checkpoint."""
        return {"input_size": self.input_size, "mean": list(self.mean), "std": list(self.std)}


def fit_to_input(image: Image.Image, input_size: int) -> np.ndarray:
    """Resize an RGB image to a square `input_size` (stretching, as CIFAKE was made) as uint8 HxWx3."""
    if image.mode != "RGB":
        image = image.convert("RGB")
    if image.size != (input_size, input_size):
        # reducing_gap lets PIL shrink large images in a cheap integer pass first; the final bicubic pass keeps
        # the antialiasing that CIFAKE's own downscaling had.
        image = image.resize((input_size, input_size), Image.Resampling.BICUBIC, reducing_gap=3.0)
    return np.array(image, dtype=np.uint8)  # a writable copy, so torch.from_numpy can take it


def normalize_batch(images: torch.Tensor, spec: PreprocessSpec) -> torch.Tensor:
    """uint8 NHWC images -> float32 NCHW (channels_last memory), scaled to [0,1] and normalised by mean/std."""
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected uint8 NHWC RGB images, got {images.dtype} {tuple(images.shape)}")
    mean = torch.tensor(spec.mean, dtype=torch.float32, device=images.device) * 255.0
    inv_std = 1.0 / (torch.tensor(spec.std, dtype=torch.float32, device=images.device) * 255.0)
    x = (images.float() - mean) * inv_std
    # NHWC storage viewed as NCHW is exactly PyTorch's channels_last layout: no copy.
    return x.permute(0, 3, 1, 2)

