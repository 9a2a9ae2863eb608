"""ArtifactCNN: the project's own small CNN for 32x32 real-vs-generated classification.

Design notes (why, not what):
- Full resolution is kept for the first stage: diffusion artefacts live in the highest frequencies, so the network
  looks at every pixel before it pools anything away.
- Three VGG-style stages of two 3x3 convs with batch norm, max-pooling between them (airbench's recipe for 32 px
  images), then global max+mean pooling so one strong local artefact is enough to raise the FAKE logit.
- The last stage runs at 8x8 for a 32 px input, which is the layer Grad-CAM explains.
"""
from __future__ import annotations

import torch
from torch import nn


def _conv_bn(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.GELU(),
    )


class ConvStage(nn.Module):
    """Two conv-BN-GELU layers with a residual connection around the second."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.expand = _conv_bn(in_channels, out_channels)
        self.refine = _conv_bn(out_channels, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.expand(x)
        return x + self.refine(x)


class ArtifactCNN(nn.Module):
    """Custom CNN: stem, three residual conv stages at 32/16/8 px, global max+mean pooling, linear head."""

    gradcam_layer = "stages.2"

    def __init__(self, num_classes: int = 2, widths: tuple[int, ...] | list[int] = (32, 64, 128, 256),
                 dropout: float = 0.1) -> None:
        super().__init__()
        if len(widths) != 4:
            raise ValueError("widths must give 4 channel counts: stem and three stages")
        stem_width, *stage_widths = widths
        self.stem = _conv_bn(3, stem_width)
        stages = []
        in_channels = stem_width
        for index, width in enumerate(stage_widths):
            layers: list[nn.Module] = [] if index == 0 else [nn.MaxPool2d(2)]
            layers.append(ConvStage(in_channels, width))
            stages.append(nn.Sequential(*layers))
            in_channels = width
        self.stages = nn.Sequential(*stages)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * in_channels, num_classes))
        # A zero head starts every image at p=0.5 (loss ln 2), which keeps the first steps stable.
        nn.init.zeros_(self.head[1].weight)
        nn.init.zeros_(self.head[1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.stages(self.stem(x))
        pooled = torch.cat([features.amax(dim=(2, 3)), features.mean(dim=(2, 3))], dim=1)
        return self.head(pooled)
