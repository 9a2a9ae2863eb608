"""Model registry: one record per architecture, with what it needs to be built, explained and fed.

Like timm's `register_model` and `default_cfgs`, each record carries the architecture's builder, where Grad-CAM cuts
it, and its default input size and normalisation. config/config.yaml only overrides those defaults
(`utils.config.load_config` fills them in), and a trained model's checkpoint records the values it was trained with.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from torch import nn

# The architectures' default normalisation. This module imports no torch: the config reads the defaults below in
# processes that never build a model (the production launcher, benchmark clients), so each record names its
# implementation and the module holding it is imported on first use.
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
    """One registered architecture: its implementation (module and names in it) and its defaults."""

    name: str
    module: str  # where the three callables below live
    builder: str  # arch_args -> a randomly initialised model
    splitter: str  # model -> (prefix, suffix) at the Grad-CAM layer
    layer_rule: str  # arch_args -> the name of the layer Grad-CAM explains
    input_size: int = 32  # the CIFAKE side; the photo sections override it in the config
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def _resolve(self, attribute: str):
        return getattr(importlib.import_module(self.module), attribute)

    def build(self, **arch_args) -> nn.Module:
        return self._resolve(self.builder)(**arch_args)

    def split(self, model: nn.Module) -> tuple[nn.Module, nn.Module]:
        return self._resolve(self.splitter)(model)

    def gradcam_layer(self, **arch_args) -> str:
        return self._resolve(self.layer_rule)(**arch_args)

    def default_cfg(self) -> dict:
        """The defaults a config section of this architecture starts from."""
        return {"input_size": self.input_size, "mean": list(self.mean), "std": list(self.std)}


REGISTRY: dict[str, Architecture] = {arch.name: arch for arch in (
    Architecture("artifact_cnn", "models.artifact_cnn", "ArtifactCNN", "split_artifact_cnn",
                 "artifact_cnn_gradcam_layer"),
    Architecture("efficientnet_b0", "models.efficientnet", "build_efficientnet_b0", "split_efficientnet_b0",
                 "efficientnet_b0_gradcam_layer"),
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


def load_imagenet_weights(model: nn.Module, source: str) -> None:
    """Load ImageNet weights into an EfficientNet-B0 (models/efficientnet.py; `--pretrained`)."""
    from models.efficientnet import load_imagenet_weights as load

    return load(model, source)


__all__ = ["Architecture", "GradCamSplit", "IMAGENET_MEAN", "IMAGENET_STD", "REGISTRY", "architecture",
           "build_model", "load_imagenet_weights", "split_at_gradcam_layer"]
