"""How the two models' calibrated probabilities combine into one verdict."""
from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


def ensemble_p_fake(member_p_fake: Sequence[np.ndarray | float]) -> np.ndarray:
    """The ensemble's p_fake: the mean of the members' calibrated p_fake."""
    return np.mean(np.stack([np.asarray(p, dtype=np.float64) for p in member_p_fake]), axis=0)


def ensemble_threshold(member_thresholds: Sequence[float]) -> float:
    """The ensemble's cut-off: the mean of the members' validation-chosen thresholds."""
    return float(np.mean(member_thresholds))


PAIR_FILE = "photo_pair.json"


def read_pair_threshold(weights_dir: Path, pair: Sequence) -> float | None:
    """The photo ensemble's validation-chosen threshold from `photo_pair.json`, if it was fitted on these very
    checkpoints (their creation times must match); otherwise None, and the mean of the members' thresholds.

    `pair` holds the loaded members: anything with a `name` and the checkpoint `metadata`."""
    path = weights_dir / PAIR_FILE
    if not path.is_file():
        return None
    try:
        fitted = json.loads(path.read_text(encoding="utf-8"))
        members = {m.name: m.metadata.get("created_at") for m in pair}
        if fitted.get("members") != members:
            log.warning("%s was fitted on other photo checkpoints (%s, loaded %s); using the mean of the "
                        "models' thresholds", path.name, fitted.get("members"), members)
            return None
        return float(fitted["threshold"])
    except (ValueError, KeyError, TypeError):
        log.warning("%s is not a valid pair calibration; using the mean of the models' thresholds", path.name)
        return None
