"""Model registry: build any project model by name, and find the layer Grad-CAM explains."""
from __future__ import annotations

from typing import Callable

from torch import nn

from models.artifact_cnn import ArtifactCNN
from models.efficientnet import build_efficientnet_b0, load_imagenet_weights

MODEL_BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "artifact_cnn": ArtifactCNN,
    "efficientnet_b0": build_efficientnet_b0,
}


def build_model(arch: str, **arch_args) -> nn.Module:
    """Build the architecture registered as `arch` with its constructor arguments."""
    if arch not in MODEL_BUILDERS:
        raise ValueError(f"unknown architecture {arch!r}; known: {sorted(MODEL_BUILDERS)}")
    return MODEL_BUILDERS[arch](**arch_args)


__all__ = ["build_model", "load_imagenet_weights", "MODEL_BUILDERS"]
