"""Reading config/config.yaml."""
from __future__ import annotations

from pathlib import Path

import yaml

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG_PATH = PROJECT_ROOT / "config" / "config.yaml"


def load_config(path: str | Path | None = None) -> dict:
    """The project configuration as a dict (config/config.yaml unless another path is given)."""
    with open(path or DEFAULT_CONFIG_PATH, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def project_path(value: str | Path) -> Path:
    """A config path resolved against the project root when it is relative."""
    path = Path(value)
    return path if path.is_absolute() else PROJECT_ROOT / path
