"""HTTP endpoints. Each one parses the request, calls the detector, and shapes JSON; nothing more."""
from __future__ import annotations

import time

from flask import Blueprint, current_app, jsonify, request

from backend.errors import error_body, status_for
from backend.intake import read_batch_uploads, read_single_upload
from backend.openapi import openapi_document
from utils.errors import DetectorError, ImageTooLarge
from utils.image_io import SUPPORTED_FORMATS, MEDIA_TYPES, decode_image

api = Blueprint("api", __name__, url_prefix="/api")


def _settings() -> dict:
    return current_app.config["DETECTOR_SETTINGS"]


def _holder():
    return current_app.extensions["detector"]


def _explain_requested() -> bool:
    return request.args.get("explain", "true").strip().lower() not in ("false", "0", "no", "off")


@api.get("/health")
def health():
    """Liveness: the process answers."""
    return jsonify({"status": "ok"})


@api.get("/ready")
def ready():
    """Readiness: 200 once the models are loaded, 503 before (or if they failed to load)."""
    holder = _holder()
    if holder.ready:
        return jsonify({"status": "ready", "models": [m.name for m in holder.get().models]})
    message = holder.error or "the models are still loading"
    return jsonify({"status": "not_ready", **error_body("model_unavailable", message)}), 503


@api.get("/models")
def models():
    """Each model's metadata and measured metrics, plus the service limits a client should respect."""
    detector = _holder().get()
    settings = _settings()
    return jsonify({
        "models": detector.describe(),
        "ensemble": {"rule": "mean of the models' calibrated p_fake", "threshold": detector.threshold,
                     "thresholds": detector.thresholds, "uncertain_band": detector.uncertain_band},
        "routing": {"thumbnail_max_side": detector.thumbnail_max_side, "max_tiles": detector.max_tiles,
                    "profiles": {profile: [m.name for m in pair] for profile, pair in detector.pairs.items()}},
        "limits": {"max_upload_bytes": settings["max_upload_bytes"], "max_pixels": settings["max_pixels"],
                   "max_batch_files": settings["max_batch_files"],
                   "formats": list(SUPPORTED_FORMATS), "media_types": sorted(set(MEDIA_TYPES.values()))},
    })


@api.post("/predict")
def predict():
    """Classify one image (multipart field `image` or a raw image body)."""
    started = time.perf_counter()
    settings = _settings()
    data, filename = read_single_upload(request, settings["max_upload_bytes"])
    detector = _holder().get()
    decode_start = time.perf_counter()
    decoded = decode_image(data, settings["max_pixels"])
    decode_ms = (time.perf_counter() - decode_start) * 1000
    result = detector.predict([decoded], [data], explain=_explain_requested())[0]
    result["input"]["filename"] = filename
    result["timing_ms"] = {"decode": round(decode_ms, 2), **result["timing_ms"],
                           "total": round((time.perf_counter() - started) * 1000, 2)}
    return jsonify(result)


@api.post("/predict/batch")
def predict_batch():
    """Classify several images; a bad file gets its own error and does not fail the others."""
    started = time.perf_counter()
    settings = _settings()
    uploads = read_batch_uploads(request, settings["max_batch_files"])
    detector = _holder().get()
    entries: list[dict] = []
    good = []
    for index, (data, filename) in enumerate(uploads):
        entry = {"index": index, "filename": filename}
        try:
            if len(data) > settings["max_upload_bytes"]:
                raise ImageTooLarge(f"the image is larger than the limit of {settings['max_upload_bytes']:,} bytes")
            good.append((entry, data, decode_image(data, settings["max_pixels"])))
        except DetectorError as error:
            entry.update(error_body(error.code, error.message))
            entry["status"] = status_for(error)
        entries.append(entry)
    if good:
        results = detector.predict([d for _, _, d in good], [b for _, b, _ in good], explain=_explain_requested())
        for (entry, _, _), result in zip(good, results):
            result["input"]["filename"] = entry["filename"]
            entry.update(status=200, result=result)
    return jsonify({"results": entries, "count": len(entries),
                    "failed": sum(1 for e in entries if e["status"] != 200),
                    "timing_ms": {"total": round((time.perf_counter() - started) * 1000, 2)}})


@api.get("/openapi.json")
def openapi():
    """The OpenAPI 3 description of this API."""
    return jsonify(openapi_document())
