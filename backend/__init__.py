"""The detector service: `create_app()` builds the Flask app (backend/app.py).

Importing the package stays light on purpose: the production server's master process (backend/serve.py) imports
it to read its settings, and must not load torch, which each worker loads for itself.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask


def create_app(test_config: dict | None = None) -> "Flask":
    """Build the app (see backend.app.create_app for `test_config`)."""
    from backend.app import create_app as build

    return build(test_config)
