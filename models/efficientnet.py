"""torchvision's EfficientNet-B0 with a 2-class head, plus loading of ImageNet weights when a user has them."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torchvision.models import EfficientNet_B0_Weights
from torchvision.models.efficientnet import EfficientNet, _efficientnet_conf

log = logging.getLogger(__name__)

# Grad-CAM explains features.3 (stride 8 from the network's input): at 32 px its map is 4x4, while the last
# stages are 2x2 and 1x1, too coarse to show anything. With the input upsampled 2x it is 8x8.
EFFICIENTNET_GRADCAM_LAYER = "features.3"


def efficientnet_b0_gradcam_layer(**_) -> str:
    """The layer Grad-CAM explains, whatever the arguments."""
    return EFFICIENTNET_GRADCAM_LAYER


def bicubic_upsampling_matrix(size: int, factor: int) -> torch.Tensor:
    """The (size * factor, size) matrix of PyTorch's bicubic upsampling along one axis (align_corners=False).

    Upsampling is linear and separable, so `A_h @ x @ A_w.T` equals `F.interpolate(x, scale_factor=factor,
    mode="bicubic")`; as two small matrix products it ran several times faster in ONNX Runtime than its cubic
    Resize operator. Built with NumPy (PyTorch's kernel: a = -0.75, half-pixel centres, edge taps clamped), so
    that exporting the model records the matrix as a constant.
    """
    a = -0.75
    out = np.arange(size * factor)
    source = (out + 0.5) / factor - 0.5
    base = np.floor(source).astype(int)
    t = source - base
    weights = [((a * (t + 1) - 5 * a) * (t + 1) + 8 * a) * (t + 1) - 4 * a,
               ((a + 2) * t - (a + 3)) * t * t + 1,
               ((a + 2) * (1 - t) - (a + 3)) * (1 - t) * (1 - t) + 1,
               ((a * (2 - t) - 5 * a) * (2 - t) + 8 * a) * (2 - t) - 4 * a]
    matrix = np.zeros((size * factor, size))
    for offset, weight in zip((-1, 0, 1, 2), weights):
        np.add.at(matrix, (out, np.clip(base + offset, 0, size - 1)), weight)
    return torch.from_numpy(matrix)


class InputUpsample(nn.Module):
    """Fixed bicubic upsampling by an integer `factor` (identity at 1); it has no weights."""

    def __init__(self, factor: int = 1) -> None:
        super().__init__()
        if int(factor) != factor or factor < 1:
            raise ValueError(f"upsample must be a positive integer, got {factor}")
        self.factor = int(factor)
        self._matrices: dict[tuple[int, torch.dtype, torch.device], torch.Tensor] = {}

    def _matrix(self, size: int, like: torch.Tensor) -> torch.Tensor:
        # Built once per size, dtype and device (two threads may both build one; they build the same matrix). An
        # ONNX export records the matrices of the example's size as constants: only the batch axis is dynamic.
        key = (size, like.dtype, like.device)
        if key not in self._matrices:
            # a normal tensor even when first needed under inference_mode, so autograd (FGSM, Grad-CAM) can use it
            with torch.inference_mode(False):
                self._matrices[key] = bicubic_upsampling_matrix(size, self.factor).to(like.dtype).to(like.device)
        return self._matrices[key]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.factor == 1:
            return x
        return self._matrix(x.shape[-2], x) @ x @ self._matrix(x.shape[-1], x).T

    def extra_repr(self) -> str:
        return f"factor={self.factor}"


class EfficientNetWithInputUpsample(EfficientNet):
    """torchvision's EfficientNet, unchanged, behind a fixed input upsampling.

    EfficientNet-B0's stem has stride 2 and its last stages are 2x2 and 1x1 on a 32 px CIFAKE image. Upsampling
    2x first (`upsample: 2` in the model's arch_args) doubles every feature map, at four times the FLOPs. The
    shipped model does not upsample (upsample 1 is the plain torchvision network): the README's "Why 32 px"
    gives the measured gain and cost. The upsampling has no weights, so the state dict is exactly torchvision's
    and ImageNet weights load as they are.
    """

    def __init__(self, inverted_residual_setting, dropout: float, upsample: int = 1, **kwargs) -> None:
        super().__init__(inverted_residual_setting, dropout, **kwargs)
        self.input_upsample = InputUpsample(upsample)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(self.input_upsample(x))


def build_efficientnet_b0(num_classes: int = 2, dropout: float = 0.2, upsample: int = 1) -> nn.Module:
    """EfficientNet-B0 from torchvision, randomly initialised, with a `num_classes` head, upsampling its input
    `upsample` times first (1: none, the plain torchvision network)."""
    # torchvision's own B0 configuration (what torchvision.models.efficientnet_b0 builds), in a subclass that
    # only adds the upsampling in front. _efficientnet_conf is torchvision-private (pinned in requirements.txt);
    # tests/models/test_models.py loads this model's state dict strictly into torchvision's efficientnet_b0.
    setting, last_channel = _efficientnet_conf("efficientnet_b0", width_mult=1.0, depth_mult=1.0)
    model = EfficientNetWithInputUpsample(setting, dropout, upsample=upsample, last_channel=last_channel,
                                          num_classes=num_classes)
    # torchvision scales the head's init by 1/sqrt(num_classes): with 2 classes the first logits are large and
    # early training is unstable, so start the head near zero instead.
    head = model.classifier[-1]
    nn.init.normal_(head.weight, std=0.01)
    nn.init.zeros_(head.bias)
    model.gradcam_layer = EFFICIENTNET_GRADCAM_LAYER
    return model


def split_efficientnet_b0(model: EfficientNetWithInputUpsample) -> tuple[nn.Module, nn.Module]:
    """(input upsampling and features up to the Grad-CAM layer, the rest), mirroring the model's forward."""
    cut = int(EFFICIENTNET_GRADCAM_LAYER.split(".")[1]) + 1
    return (nn.Sequential(model.input_upsample, model.features[:cut]),
            nn.Sequential(model.features[cut:], model.avgpool, nn.Flatten(1), model.classifier))


def load_imagenet_weights(model: nn.Module, source: str) -> None:
    """Copy ImageNet weights into `model`'s backbone, leaving its classifier head as initialised.

    `source` is "torchvision" (torchvision's weights API; it downloads unless the file is already in the torch
    hub cache) or the path of a local file holding an ImageNet EfficientNet-B0 state dict.
    """
    if source == "torchvision":
        state = EfficientNet_B0_Weights.IMAGENET1K_V1.get_state_dict(progress=False)
    else:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"pretrained weights file not found: {path}")
        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
    backbone = {k: v for k, v in state.items() if not k.startswith("classifier.")}
    missing, unexpected = model.load_state_dict(backbone, strict=False)
    missing_backbone = [k for k in missing if not k.startswith("classifier.")]
    if missing_backbone or unexpected:
        raise ValueError(
            "pretrained file does not match EfficientNet-B0: "
            f"{len(missing_backbone)} missing and {len(unexpected)} unexpected keys "
            f"(first: {(missing_backbone + list(unexpected))[:3]})"
        )
    log.info("loaded ImageNet weights into EfficientNet-B0 backbone from %s (%d tensors)", source, len(backbone))
