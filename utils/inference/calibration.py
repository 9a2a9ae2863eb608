"""Temperature scaling and threshold choice, both fitted on a validation split."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from utils.inference.preprocessing import FAKE_INDEX


def p_fake_from_logits(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Calibrated probability of FAKE from 2-class logits."""
    return torch.softmax(logits.float() / temperature, dim=1)[:, FAKE_INDEX]


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor, max_iter: int = 200) -> float:
    """The temperature T > 0 minimising the NLL of softmax(logits / T) on held-out data."""
    logits = logits.detach().float().clone()  # inference-mode tensors cannot enter autograd
    labels = labels.detach().long()
    log_t = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.1, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(log_t.exp().item())


def choose_threshold(p_fake: np.ndarray, labels: np.ndarray) -> float:
    """The p_fake cut-off maximising accuracy on held-out data; ties go to the value closest to 0.5."""
    p_fake = np.asarray(p_fake, dtype=np.float64)
    labels = np.asarray(labels)
    candidates = np.round(np.arange(0.05, 0.951, 0.005), 3)
    accuracies = np.array([np.mean((p_fake >= t) == (labels == 1)) for t in candidates])
    best = np.flatnonzero(accuracies >= accuracies.max() - 1e-12)
    return float(candidates[best[np.argmin(np.abs(candidates[best] - 0.5))]])
