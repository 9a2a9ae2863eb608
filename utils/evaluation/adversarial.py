"""FGSM (fast gradient sign method) in pixel space, for evaluation and for adversarial training.

Epsilon is in pixel units of [0,1], before any normalisation: an attack of 2/255 moves every pixel by at most two
uint8 steps. The differentiated function therefore starts at [0,1] pixels and applies each model's own mean/std
normalisation itself, so one perturbation is comparable across models with different normalisations.
"""
from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from utils.inference.forward import autocast_context
from utils.inference.preprocessing import PreprocessSpec


class Attackable(Protocol):
    """What an attack needs of a scorer: the network, its preprocessing and its temperature."""

    model: nn.Module
    spec: PreprocessSpec
    temperature: float


def parse_epsilon(value: str | float) -> float:
    """An epsilon given as a number (0.0078) or a fraction of pixel steps ("2/255"); must lie in (0, 1]."""
    try:
        epsilon = float(Fraction(str(value).strip())) if isinstance(value, str) else float(value)
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"epsilon {value!r} is not a number such as 0.0078 or 2/255") from None
    if not 0.0 < epsilon <= 1.0:
        raise ValueError(f"epsilon {value!r} must lie in (0, 1] (pixel units of [0,1])")
    return epsilon


def pixels_from_uint8(images: torch.Tensor) -> torch.Tensor:
    """uint8 NHWC images -> float32 NCHW pixels in [0,1]."""
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected uint8 NHWC RGB images, got {images.dtype} {tuple(images.shape)}")
    return images.permute(0, 3, 1, 2).float() / 255.0


def _channel_stats(spec: PreprocessSpec, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mean = torch.tensor(spec.mean, dtype=torch.float32, device=like.device).view(1, 3, 1, 1)
    std = torch.tensor(spec.std, dtype=torch.float32, device=like.device).view(1, 3, 1, 1)
    return mean, std


def normalize_pixels(pixels: torch.Tensor, spec: PreprocessSpec) -> torch.Tensor:
    """Differentiable [0,1] NCHW pixels -> the model's normalised input (same mapping as normalize_batch)."""
    mean, std = _channel_stats(spec, pixels)
    return (pixels - mean) / std


def denormalize(inputs: torch.Tensor, spec: PreprocessSpec) -> torch.Tensor:
    """A normalised NCHW batch back to [0,1] pixels (clipped: augmentation never leaves the range, rounding may)."""
    mean, std = _channel_stats(spec, inputs)
    return (inputs.float() * std + mean).clamp(0.0, 1.0)


def calibrated_margin(model: nn.Module, spec: PreprocessSpec, temperature: float,
                      pixels: torch.Tensor) -> torch.Tensor:
    """log(p_fake / (1 - p_fake)) of the calibrated p_fake for [0,1] pixels; sigmoid of it is the served p_fake."""
    logits = model(normalize_pixels(pixels, spec)).float()
    return (logits[:, 1] - logits[:, 0]) / temperature


def mean_probability_nll(margins: Sequence[torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
    """Summed binary cross-entropy of the mean of sigmoid(margin) over members, computed in log space.

    With one member this is the model's own calibrated cross-entropy; with several it is the loss of the ensemble's
    p_fake (the mean of the members' calibrated p_fake), which is what an attack on the ensemble must raise.
    Log-sum-exp keeps the gradient alive where a member is very confident (p_fake at 1.0 in float32).
    """
    stacked = torch.stack(list(margins))
    log_count = torch.log(torch.tensor(float(len(margins)), device=stacked.device))
    log_p_fake = torch.logsumexp(F.logsigmoid(stacked), dim=0) - log_count
    log_p_real = torch.logsumexp(F.logsigmoid(-stacked), dim=0) - log_count
    is_fake = labels.to(stacked.device).bool()
    return -torch.where(is_fake, log_p_fake, log_p_real).sum()


def fgsm_step(pixels: torch.Tensor, gradient: torch.Tensor, epsilon: float) -> torch.Tensor:
    """One FGSM step: move every pixel by epsilon along the sign of the loss gradient, then clip to [0,1]."""
    return (pixels + epsilon * gradient.sign()).clamp(0.0, 1.0)


def attack_gradient(members: Sequence[Attackable], pixels: torch.Tensor, labels: torch.Tensor,
                    bf16: bool = False) -> torch.Tensor:
    """Gradient of the (ensemble) calibrated cross-entropy with respect to [0,1] pixels, for one batch.

    `members` are e.g. utils.inference.scoring.CalibratedModel; the models' modes (eval/train) are used as they are. Only
    the input gradient is computed: parameters' `.grad` stay untouched.
    """
    # clone(): a leaf of our own, even when the caller's tensor was made under inference mode
    pixels = pixels.detach().float().clone().requires_grad_(True)
    with torch.enable_grad(), autocast_context(pixels.device, bf16):
        margins = [calibrated_margin(m.model, m.spec, m.temperature, pixels) for m in members]
        loss = mean_probability_nll(margins, labels)
    (gradient,) = torch.autograd.grad(loss, pixels)
    return gradient


def fgsm_gradient_sign(members: Sequence[Attackable], pixels: torch.Tensor, labels: torch.Tensor,
                       batch_size: int = 256) -> torch.Tensor:
    """Sign of the attack gradient (int8, NCHW) for many images, in batches; reused for every epsilon."""
    signs = []
    for start in range(0, len(pixels), batch_size):
        gradient = attack_gradient(members, pixels[start:start + batch_size], labels[start:start + batch_size])
        signs.append(gradient.sign().to(torch.int8))
    return torch.cat(signs) if signs else torch.empty(0, dtype=torch.int8)


class _Member:
    """Adapter so a bare training model can go through attack_gradient (uncalibrated: temperature 1)."""

    def __init__(self, model: nn.Module, spec: PreprocessSpec) -> None:
        self.model, self.spec, self.temperature = model, spec, 1.0


def fgsm_training_batch(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, spec: PreprocessSpec,
                        fraction: float, epsilon: float, bf16: bool = False) -> tuple[torch.Tensor, int]:
    """Replace the first `fraction` of a normalised training batch by FGSM examples; returns (batch, count).

    The batch order is already random, so the first images are a random subset. The perturbation is made in [0,1]
    pixel space (denormalise, attack through the normalisation, clip, renormalise). The attack is crafted with the
    model in eval mode, so batch-norm running statistics and dropout are those the attack meets at test time and
    the crafting pass does not update running statistics; the model's mode is restored afterwards.
    """
    count = int(round(fraction * len(inputs)))
    if count == 0:
        return inputs, 0
    pixels = denormalize(inputs[:count], spec)
    was_training = model.training
    model.eval()
    try:
        gradient = attack_gradient([_Member(model, spec)], pixels, labels[:count], bf16=bf16)
    finally:
        model.train(was_training)
    adversarial = normalize_pixels(fgsm_step(pixels, gradient, epsilon), spec).to(inputs.dtype)
    mixed = torch.cat([adversarial, inputs[count:]])
    return mixed.contiguous(memory_format=torch.channels_last), count


@torch.inference_mode()
def p_fake_of_pixels(member: Attackable, pixels: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Calibrated p_fake (float32) of [0,1] NCHW pixels, through the same normalisation the attack used."""
    member.model.eval()
    outputs = [torch.sigmoid(calibrated_margin(member.model, member.spec, member.temperature,
                                               pixels[start:start + batch_size]))
               for start in range(0, len(pixels), batch_size)]
    return torch.cat(outputs) if outputs else torch.empty(0)
