"""Every setting of a training run, resolved in one place with one order of precedence, then frozen.

The order, for every value: a command-line flag the user gave, else the config's `models.<model>.train` section,
else the section's built-in default. Optional sections (FGSM adversarial training, distillation) exist only when
their switch flag is given, and their other flags are refused without it. The result is written into the run folder
(`settings.json`), stored in the resumable state, and `--resume` compares the whole of it: a run is continued only
with the settings it was started with (its length, `epochs`, may grow).
"""
from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

SETTINGS_FILE = "settings.json"
RESUMABLE_CHANGES = ("hyperparameters.epochs",)  # what a resumed run may change: it may be made longer


@dataclass(frozen=True)
class Section:
    """How one group of settings is resolved.

    `flags` maps each setting to the argparse destination that overrides it. A section with a `switch` (an argparse
    destination) exists only when that flag is given. `check` validates the resolved values and may complete them
    (derived values, descriptions); it raises ValueError with a message for the user.
    """

    name: str
    flags: Mapping[str, str]
    switch: str | None = None
    defaults: Mapping[str, Any] = field(default_factory=dict)
    check: Callable[[dict], dict] | None = None


def _flag_name(dest: str) -> str:
    return "--" + dest.replace("_", "-")


@dataclass(frozen=True)
class TrainingSettings:
    """The resolved settings of one run: read-only mappings, one per section (None where a section is off)."""

    sections: Mapping[str, Mapping[str, Any] | None]

    def __getitem__(self, name: str) -> Mapping[str, Any] | None:
        return self.sections[name]

    @property
    def hyperparameters(self) -> Mapping[str, Any]:
        return self.sections["hyperparameters"]

    def to_json(self) -> dict:
        """Plain dicts, for JSON and for the checkpoint's metadata."""
        return {name: (dict(values) if values is not None else None) for name, values in self.sections.items()}

    def write(self, run_dir: Path) -> Path:
        path = run_dir / SETTINGS_FILE
        path.write_text(json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
        return path

    def differences(self, recorded: Mapping[str, Any]) -> list[str]:
        """The settings (as "section.key") that differ from `recorded`, apart from those a resume may change."""
        current = json.loads(json.dumps(self.to_json()))  # tuples and the like compare as JSON would store them
        changed = []
        for name in sorted(set(current) | set(recorded)):
            mine, theirs = current.get(name), recorded.get(name)
            if mine is None or theirs is None:
                if mine != theirs:
                    changed.append(name)
                continue
            changed += [f"{name}.{key}" for key in sorted(set(mine) | set(theirs))
                        if mine.get(key) != theirs.get(key) and f"{name}.{key}" not in RESUMABLE_CHANGES]
        return changed


def resolve_settings(args: argparse.Namespace, train_cfg: Mapping[str, Any],
                     sections: Sequence[Section]) -> TrainingSettings:
    """Resolve every section: flag, else config, else default; then each section's check.

    The first section takes every key of `train_cfg` that is not another section's name; each further section
    takes the config mapping under its own name.
    """
    names = {section.name for section in sections}
    resolved: dict[str, Mapping[str, Any] | None] = {}
    for position, section in enumerate(sections):
        given = {key: getattr(args, dest) for key, dest in section.flags.items()
                 if getattr(args, dest, None) is not None}
        if section.switch is not None and not getattr(args, section.switch, None):
            stray = [_flag_name(section.flags[key]) for key in given]
            if stray:
                raise ValueError(f"{' and '.join(stray)} only apply together with {_flag_name(section.switch)}")
            resolved[section.name] = None
            continue
        if position == 0:
            configured = {key: value for key, value in train_cfg.items() if key not in names}
        else:
            configured = dict(train_cfg.get(section.name) or {})
        values = {**section.defaults, **configured, **given}
        if section.check is not None:
            values = section.check(values)
        resolved[section.name] = MappingProxyType(values)
    return TrainingSettings(MappingProxyType(resolved))


def check_resumable(settings: TrainingSettings, recorded: Mapping[str, Any] | None, run_dir: Path) -> None:
    """Refuse to continue a run with settings other than those it was started with."""
    if recorded is None:
        return
    changed = settings.differences(recorded)
    if changed:
        raise ValueError(f"--resume: the run in {run_dir} was started with other settings ({', '.join(changed)}); "
                         f"give the same settings, or another --run-dir to start a new run")
