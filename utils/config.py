"""Reading config/config.yaml."""
from __future__ import annotations

from pathlib import Path

import yaml

from models import architecture

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG_PATH = PROJECT_ROOT / "config" / "config.yaml"


def load_config(path: str | Path | None = None) -> dict:
    """The project configuration as a dict (config/config.yaml unless another path is given).

    Each `models.<name>` section starts from its architecture's registered defaults (input size, mean, std;
    models/__init__.py), which the section's own keys override.
    """
    with open(path or DEFAULT_CONFIG_PATH, encoding="utf-8") as handle:
        config = yaml.safe_load(handle)
    for name, section in (config.get("models") or {}).items():
        config["models"][name] = {**architecture(section["arch"]).default_cfg(), **section}
    return config


def project_path(value: str | Path) -> Path:
    """A config path resolved against the project root when it is relative."""
    path = Path(value)
    return path if path.is_absolute() else PROJECT_ROOT / path
