"""Model registry: build any project model by name, and cut it at the layer Grad-CAM explains."""
from __future__ import annotations

from typing import Callable, NamedTuple

from torch import nn

from models.artifact_cnn import ArtifactCNN, split_artifact_cnn
from models.efficientnet import build_efficientnet_b0, load_imagenet_weights, split_efficientnet_b0

MODEL_BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "artifact_cnn": ArtifactCNN,
    "efficientnet_b0": build_efficientnet_b0,
}
_SPLITTERS: dict[str, Callable[[nn.Module], tuple[nn.Module, nn.Module]]] = {
    "artifact_cnn": split_artifact_cnn,
    "efficientnet_b0": split_efficientnet_b0,
}


class GradCamSplit(NamedTuple):
    """A model cut at its Grad-CAM layer. `prefix(x)` is that layer's output and `suffix(prefix(x)) == model(x)`.

    Both halves share the model's parameters. Serving runs the whole model once and keeps the layer's output, so
    Grad-CAM only has to differentiate the (small) suffix instead of running the model a second time.
    """

    prefix: nn.Module
    suffix: nn.Module


def build_model(arch: str, **arch_args) -> nn.Module:
    """Build the architecture registered as `arch` with its constructor arguments."""
    if arch not in MODEL_BUILDERS:
        raise ValueError(f"unknown architecture {arch!r}; known: {sorted(MODEL_BUILDERS)}")
    return MODEL_BUILDERS[arch](**arch_args)


def split_at_gradcam_layer(arch: str, model: nn.Module) -> GradCamSplit:
    """Cut a model built by `build_model(arch, ...)` at its `gradcam_layer`."""
    if arch not in _SPLITTERS:
        raise ValueError(f"unknown architecture {arch!r}; known: {sorted(_SPLITTERS)}")
    return GradCamSplit(*_SPLITTERS[arch](model))


__all__ = ["build_model", "load_imagenet_weights", "split_at_gradcam_layer", "GradCamSplit", "MODEL_BUILDERS"]
