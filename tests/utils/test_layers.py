"""The folders form layers: a package imports only from the layers below it, and each says what it owns."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT

# Bottom to top, as utils/__init__.py states; the entry points (train_*.py, evaluate.py, ...) sit above them all.
LAYERS = ["models", "utils (shared)", "utils.imaging", "utils.inference", "utils.data", "utils.evaluation",
          "utils.training", "backend"]
SHARED = {"errors", "config", "entry_point"}
SUB_PACKAGES = ["imaging", "inference", "data", "evaluation", "training"]


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] in ("models", "backend"):
        return parts[0]
    if parts[0] != "utils":
        return None
    return "utils (shared)" if len(parts) == 1 or parts[1] in SHARED else f"utils.{parts[1]}"


def imports_of(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
        elif isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
    return found


def test_no_module_imports_from_a_layer_above_its_own():
    upward = []
    for folder in ("models", "utils", "backend"):
        for path in sorted((PROJECT_ROOT / folder).rglob("*.py")):
            module = ".".join(path.relative_to(PROJECT_ROOT).with_suffix("").parts)
            mine = layer_of(module)
            for target in imports_of(path):
                theirs = layer_of(target)
                if theirs and LAYERS.index(theirs) > LAYERS.index(mine):
                    upward.append(f"{module} ({mine}) imports {target} ({theirs})")
    assert not upward, "\n".join(upward)


def test_the_layer_check_sees_an_upward_import():
    assert layer_of("utils.imaging.decoding") == "utils.imaging"
    assert LAYERS.index(layer_of("backend.detector")) > LAYERS.index(layer_of("utils.evaluation.metrics"))
    assert layer_of("utils.errors") == "utils (shared)" and layer_of("numpy") is None


@pytest.mark.parametrize("package", SUB_PACKAGES)
def test_each_sub_package_says_in_one_line_what_it_owns(package):
    init = PROJECT_ROOT / "utils" / package / "__init__.py"
    docstring = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
    assert docstring and "\n" not in docstring.strip(), f"utils/{package}/__init__.py needs a one-line docstring"


def test_utils_holds_no_flat_modules_but_the_shared_ones():
    flat = {path.stem for path in (PROJECT_ROOT / "utils").glob("*.py")} - {"__init__"}
    assert flat == SHARED
