"""ArtifactCNN: the project's own small CNN for 32x32 real-vs-generated classification.

Design notes (why, not what):
- The stem runs at full resolution: diffusion artefacts live in the highest frequencies, so a nonlinear layer looks
  at every pixel before anything is downsampled.
- Three VGG-style stages of two 3x3 convs with batch norm and a residual around the second, max-pooling between them
  (airbench's recipe for 32 px images), then global max+mean pooling so one strong local artefact is enough to raise
  the FAKE logit.
- `first_stage_stride=2` (the shipped configuration) makes the first stage's expanding conv a learned stride-2 conv
  instead of running it at full resolution. The 64-channel convs at 32x32 were two thirds of the network's FLOPs;
  moving them to 16x16 makes the network 4x cheaper to train and serve at the same parameter count, and the stride-2
  conv sees the full-resolution stem features, so no pixel is thrown away unseen. With stride 1 the stages run at
  32/16/8 px (the original layout, still loadable from its checkpoints).
- `input_residual=True` (photo models, measured in docs/photo-data.md) feeds the stem x - up(down(x)) instead of x:
  the pixels minus their 2x nearest-neighbour downsampled-then-upsampled copy (NPR, Tan et al., CVPR 2024). What
  survives is the correlation between neighbouring pixels that a generator's upsampling layers leave behind.
- Grad-CAM explains the last stage at 8x8 or finer: the last stage with stride 1, the middle one with stride 2 (the
  last is only 4x4 there, too coarse to show where on a 32 px image the evidence is).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _conv_bn(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.GELU(),
    )


class ConvStage(nn.Module):
    """Two conv-BN-GELU layers with a residual connection around the second."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.expand = _conv_bn(in_channels, out_channels, stride)
        self.refine = _conv_bn(out_channels, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.expand(x)
        return x + self.refine(x)


class MaxMeanPool(nn.Module):
    """Global max and mean pooling, concatenated: (N, C, H, W) -> (N, 2C)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x.amax(dim=(2, 3)), x.mean(dim=(2, 3))], dim=1)


class UpsamplingResidual(nn.Module):
    """x - nearest_up(x[..., ::2, ::2]): what a 2x nearest-neighbour round trip cannot reproduce (NPR)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        coarse = F.interpolate(x[:, :, ::2, ::2], size=x.shape[-2:], mode="nearest")
        return x - coarse


def artifact_cnn_gradcam_layer(first_stage_stride: int = 1, **_) -> str:
    """The stage Grad-CAM explains: the one whose map is 8x8 at 32 px, in either stem layout."""
    return "stages.2" if first_stage_stride == 1 else "stages.1"


class ArtifactCNN(nn.Module):
    """Custom CNN: full-resolution stem, three residual conv stages, global max+mean pooling, linear head."""

    def __init__(self, num_classes: int = 2, widths: tuple[int, ...] | list[int] = (32, 64, 128, 256),
                 dropout: float = 0.1, first_stage_stride: int = 1, input_residual: bool = False) -> None:
        super().__init__()
        if len(widths) != 4:
            raise ValueError("widths must give 4 channel counts: stem and three stages")
        if first_stage_stride not in (1, 2):
            raise ValueError(f"first_stage_stride must be 1 or 2, got {first_stage_stride}")
        self.gradcam_layer = artifact_cnn_gradcam_layer(first_stage_stride=first_stage_stride)
        stem_width, *stage_widths = widths
        # weightless, so checkpoints without it load unchanged
        self.input_transform = UpsamplingResidual() if input_residual else nn.Identity()
        self.stem = _conv_bn(3, stem_width)
        stages = []
        in_channels = stem_width
        for index, width in enumerate(stage_widths):
            layers: list[nn.Module] = [] if index == 0 else [nn.MaxPool2d(2)]
            layers.append(ConvStage(in_channels, width, first_stage_stride if index == 0 else 1))
            stages.append(nn.Sequential(*layers))
            in_channels = width
        self.stages = nn.Sequential(*stages)
        self.pool = MaxMeanPool()
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * in_channels, num_classes))
        # A zero head starts every image at p=0.5 (loss ln 2), which keeps the first steps stable.
        nn.init.zeros_(self.head[1].weight)
        nn.init.zeros_(self.head[1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.stages(self.stem(self.input_transform(x)))))


def split_artifact_cnn(model: ArtifactCNN) -> tuple[nn.Module, nn.Module]:
    """(up to and including the Grad-CAM layer, the rest), for either stride of the first stage."""
    cut = int(model.gradcam_layer.split(".")[1]) + 1
    return (nn.Sequential(model.input_transform, model.stem, model.stages[:cut]),
            nn.Sequential(model.stages[cut:], model.pool, model.head))
