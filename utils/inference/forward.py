"""Batched forward passes over uint8 images through the shared preprocessing."""
from __future__ import annotations

import contextlib

import torch
from torch import nn

from utils.inference.preprocessing import PreprocessSpec, normalize_batch


def autocast_context(device: torch.device, enabled: bool):
    """bf16 autocast on the given device when enabled, else a no-op context."""
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def bf16_is_fast(device: torch.device) -> bool:
    """Whether bf16 autocast pays on this device (CUDA with bf16, or a CPU with native bf16 instructions)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    check = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    return bool(check and check())


@torch.inference_mode()
def predict_logits(model: nn.Module, images: torch.Tensor, spec: PreprocessSpec, batch_size: int = 512,
                   device: torch.device | str = "cpu", bf16: bool = False) -> torch.Tensor:
    """Float32 logits (N, 2) on the CPU for uint8 NHWC `images`, in order."""
    device = torch.device(device)
    model.eval()
    outputs = []
    for start in range(0, len(images), batch_size):
        batch = normalize_batch(images[start:start + batch_size].to(device), spec)
        with autocast_context(device, bf16):
            outputs.append(model(batch).float().cpu())
    return torch.cat(outputs) if outputs else torch.empty(0, 2)
