"""Training-time augmentation on normalised NCHW batches: random horizontal flip and random translation."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def flip_and_translate(batch: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Flip half the images left-right and shift each by up to `max_shift` px (reflect-padded)."""
    n, _, h, w = batch.shape
    flip = torch.rand(n, generator=generator) < 0.5
    batch = torch.where(flip.view(n, 1, 1, 1), batch.flip(3), batch)
    if max_shift <= 0:
        return batch
    padded = F.pad(batch, (max_shift,) * 4, mode="reflect")
    dx = torch.randint(0, 2 * max_shift + 1, (n,), generator=generator)
    dy = torch.randint(0, 2 * max_shift + 1, (n,), generator=generator)
    out = torch.empty_like(batch)
    # Group by offset: at most (2*max_shift+1)^2 slices per batch instead of one per image.
    keys = dy * (2 * max_shift + 1) + dx
    for key in keys.unique().tolist():
        idx = (keys == key).nonzero(as_tuple=True)[0]
        oy, ox = divmod(key, 2 * max_shift + 1)
        out[idx] = padded[idx, :, oy:oy + h, ox:ox + w]
    return out.contiguous(memory_format=torch.channels_last)
