"""torchvision's EfficientNet-B0 with a 2-class head, plus loading of ImageNet weights when a user has them."""
from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn
from torchvision.models import EfficientNet_B0_Weights, efficientnet_b0

log = logging.getLogger(__name__)

# At 32 px the network's last stages are 2x2 and 1x1, too coarse to show anything. features.3 is the deepest
# stage that still gives a 4x4 map at 32 px (stride 8), so Grad-CAM explains that stage.
EFFICIENTNET_GRADCAM_LAYER = "features.3"


def build_efficientnet_b0(num_classes: int = 2, dropout: float = 0.2) -> nn.Module:
    """EfficientNet-B0 from torchvision, randomly initialised, with a `num_classes` head."""
    model = efficientnet_b0(weights=None, num_classes=num_classes, dropout=dropout)
    # torchvision scales the head's init by 1/sqrt(num_classes): with 2 classes the first logits are large and
    # early training is unstable, so start the head near zero instead.
    head = model.classifier[-1]
    nn.init.normal_(head.weight, std=0.01)
    nn.init.zeros_(head.bias)
    model.gradcam_layer = EFFICIENTNET_GRADCAM_LAYER
    return model


def split_efficientnet_b0(model: nn.Module) -> tuple[nn.Module, nn.Module]:
    """(up to and including features.3, the rest), mirroring torchvision's EfficientNet.forward."""
    cut = int(EFFICIENTNET_GRADCAM_LAYER.split(".")[1]) + 1
    return model.features[:cut], nn.Sequential(model.features[cut:], model.avgpool, nn.Flatten(1), model.classifier)


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
