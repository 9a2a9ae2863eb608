"""Model registry: one record per architecture, with what it needs to be built, explained and fed.

Like timm's `register_model` and `default_cfgs`, each record carries the architecture's builder, where Grad-CAM cuts
it, and its default input size and normalisation. config/config.yaml only overrides those defaults
(`utils.config.load_config` fills them in), and a trained model's checkpoint records the values it was trained with.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from torch import nn

from models.artifact_cnn import ArtifactCNN, artifact_cnn_gradcam_layer, split_artifact_cnn
from models.efficientnet import (EFFICIENTNET_GRADCAM_LAYER, build_efficientnet_b0, load_imagenet_weights,
                                 split_efficientnet_b0)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class GradCamSplit(NamedTuple):
    """A model cut at its Grad-CAM layer. `prefix(x)` is that layer's output and `suffix(prefix(x)) == model(x)`.

    Both halves share the model's parameters. Serving runs the whole model once and keeps the layer's output, so
    Grad-CAM only has to differentiate the (small) suffix instead of running the model a second time.
    """

    prefix: nn.Module
    suffix: nn.Module


@dataclass(frozen=True)
class Architecture:
    """One registered architecture."""

    name: str
    build: Callable[..., nn.Module]  # arch_args -> a randomly initialised model
    split: Callable[[nn.Module], tuple[nn.Module, nn.Module]]  # model -> (prefix, suffix) at the Grad-CAM layer
    gradcam_layer: Callable[..., str]  # arch_args -> the name of the layer Grad-CAM explains
    input_size: int = 32  # the CIFAKE side; the photo sections override it in the config
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def default_cfg(self) -> dict:
        """The defaults a config section of this architecture starts from."""
        return {"input_size": self.input_size, "mean": list(self.mean), "std": list(self.std)}


REGISTRY: dict[str, Architecture] = {arch.name: arch for arch in (
    Architecture("artifact_cnn", ArtifactCNN, split_artifact_cnn, artifact_cnn_gradcam_layer),
    Architecture("efficientnet_b0", build_efficientnet_b0, split_efficientnet_b0,
                 lambda **_: EFFICIENTNET_GRADCAM_LAYER),
)}


def architecture(arch: str) -> Architecture:
    """The registered record of `arch`; an unknown name is refused with the known ones."""
    if arch not in REGISTRY:
        raise ValueError(f"unknown architecture {arch!r}; known: {sorted(REGISTRY)}")
    return REGISTRY[arch]


def build_model(arch: str, **arch_args) -> nn.Module:
    """Build the architecture registered as `arch` with its constructor arguments."""
    return architecture(arch).build(**arch_args)


def split_at_gradcam_layer(arch: str, model: nn.Module) -> GradCamSplit:
    """Cut a model built by `build_model(arch, ...)` at its `gradcam_layer`."""
    return GradCamSplit(*architecture(arch).split(model))


__all__ = ["Architecture", "GradCamSplit", "IMAGENET_MEAN", "IMAGENET_STD", "REGISTRY", "architecture",
           "build_model", "load_imagenet_weights", "split_at_gradcam_layer"]
