"""Serving settings: config/config.yaml's `serving` section, overridden by DETECTOR_* environment variables."""
from __future__ import annotations

import os

from utils.config import load_config, project_path

# Environment variable -> (setting, type). One place, so the README can list them.
ENV_OVERRIDES = {
    "DETECTOR_WEIGHTS_DIR": ("weights_dir", str),
    "DETECTOR_MAX_UPLOAD_BYTES": ("max_upload_bytes", int),
    "DETECTOR_MAX_PIXELS": ("max_pixels", int),
    "DETECTOR_MAX_BATCH_FILES": ("max_batch_files", int),
    "DETECTOR_MAX_BATCH_BYTES": ("max_batch_bytes", int),
    "DETECTOR_BATCH_SECONDS": ("batch_seconds", float),
    "DETECTOR_MAX_DECODE_BYTES": ("max_decode_bytes", int),
    "DETECTOR_THREADS": ("app_threads", int),
    "DETECTOR_BODY_GRACE_SECONDS": ("body_grace_seconds", float),
    "DETECTOR_BODY_MIN_BYTES_PER_SECOND": ("body_min_bytes_per_second", int),
    "DETECTOR_BODY_IDLE_SECONDS": ("body_idle_seconds", float),
    "DETECTOR_MAX_INFLIGHT_BODY_BYTES": ("max_inflight_body_bytes", int),  # production server: app threads per worker (backend/serve.py)
    "DETECTOR_CORS_ORIGINS": ("cors_origins", str),
    "DETECTOR_UNCERTAIN_BAND": ("uncertain_band", float),
    "DETECTOR_OVERLAY_SIZE": ("overlay_size", int),
    "DETECTOR_PHOTO_OVERLAY_SIZE": ("photo_overlay_size", int),
    "DETECTOR_THUMBNAIL_MAX_SIDE": ("thumbnail_max_side", int),
    "DETECTOR_MAX_TILES": ("max_tiles", int),
    "DETECTOR_TORCH_THREADS": ("torch_threads", int),  # intra-op threads of PyTorch and ONNX Runtime alike
    "DETECTOR_RUNTIME": ("runtime", str),
}


def serving_settings(overrides: dict | None = None, config_path: str | None = None) -> dict:
    """Effective serving settings: config file, then environment, then explicit overrides (flags, tests)."""
    config = load_config(config_path)
    settings = dict(config["serving"])
    settings["model_files"] = {name: section["output"] for name, section in config["models"].items()}
    for variable, (key, kind) in ENV_OVERRIDES.items():
        if variable in os.environ:
            settings[key] = kind(os.environ[variable])
    settings.update(overrides or {})
    settings["weights_dir"] = str(project_path(settings["weights_dir"]))
    return settings


BATCH_PATH = "/api/predict/batch"
FORM_HEADROOM = 65536  # multipart framing around the files


def body_limit(settings: dict, path: str) -> int:
    """The largest request body accepted on `path`: a batch's files together, else one image, plus framing."""
    return (settings["max_batch_bytes"] if path == BATCH_PATH else settings["max_upload_bytes"]) + FORM_HEADROOM


def detector_options(settings: dict) -> dict:
    """The serving settings the Detector itself takes (routing, tiling, overlays, the uncertain band)."""
    keys = ("uncertain_band", "overlay_size", "photo_overlay_size", "thumbnail_max_side", "max_tiles")
    return {key: settings[key] for key in keys if key in settings}
