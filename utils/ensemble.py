"""How the two models' calibrated probabilities combine into one verdict."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def ensemble_p_fake(member_p_fake: Sequence[np.ndarray | float]) -> np.ndarray:
    """The ensemble's p_fake: the mean of the members' calibrated p_fake."""
    return np.mean(np.stack([np.asarray(p, dtype=np.float64) for p in member_p_fake]), axis=0)


def ensemble_threshold(member_thresholds: Sequence[float]) -> float:
    """The ensemble's cut-off: the mean of the members' validation-chosen thresholds."""
    return float(np.mean(member_thresholds))
