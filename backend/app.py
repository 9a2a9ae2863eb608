"""Flask app factory: the API under /api and the static page at /, on one port."""
from __future__ import annotations

import logging

import torch
from flask import Flask
from flask_cors import CORS

from backend import pages
from backend.detector import Detector, DetectorHolder
from backend.errors import register_error_handlers
from backend.routes import api
from backend.settings import body_limit, detector_options, serving_settings

log = logging.getLogger(__name__)


def create_app(test_config: dict | None = None) -> Flask:
    """Build the app. `test_config` overrides serving settings (keys of config.yaml's `serving` section), plus
    `load_in_background` (default True) and `detector` (an already built Detector, for tests)."""
    overrides = dict(test_config or {})
    background = overrides.pop("load_in_background", True)
    prebuilt = overrides.pop("detector", None)
    settings = serving_settings(overrides)

    if settings.get("torch_threads"):
        torch.set_num_threads(int(settings["torch_threads"]))

    app = Flask(__name__, static_folder=None)
    # No redirects built from the client's Host header: "//" in a path is not merged into a redirect.
    app.url_map.merge_slashes = False
    # Werkzeug answers 413 before reading a body over this; multipart framing gets a little headroom.
    app.config["MAX_CONTENT_LENGTH"] = body_limit(settings, "/api/predict")
    app.config["DETECTOR_SETTINGS"] = settings
    app.json.sort_keys = False

    def load() -> Detector:
        if prebuilt is not None:
            return prebuilt
        return Detector.from_weights_dir(settings["weights_dir"], settings["model_files"],
                                         runtime=settings["runtime"], threads=settings.get("torch_threads"),
                                         **detector_options(settings))

    app.extensions["detector"] = DetectorHolder(load).start(background=background)

    origins = settings["cors_origins"]
    CORS(app, resources={r"/api/*": {"origins": origins.split(",") if isinstance(origins, str) and
                                     origins != "*" else origins}})
    app.register_blueprint(api)
    register_error_handlers(app)
    app.register_blueprint(pages.bp)
    return app
