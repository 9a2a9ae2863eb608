"""HTTP endpoints. Each one parses the request, calls the detector, and shapes JSON; nothing more."""
from __future__ import annotations

import time

from flask import Blueprint, current_app, jsonify, request

from backend.asgi import CLIENT_GONE_KEY
from backend.errors import ClientGone, error_body, status_for
from backend.intake import read_batch_uploads, read_single_upload
from backend.openapi import openapi_document
from backend.settings import BATCH_PATH, body_limit
from utils.errors import BadRequest, BatchBudgetSpent, DetectorError, ImageTooLarge
from utils.imaging.decoding import MEDIA_TYPES, SUPPORTED_FORMATS, decode_image

api = Blueprint("api", __name__, url_prefix="/api")


def _settings() -> dict:
    return current_app.config["DETECTOR_SETTINGS"]


def _holder():
    return current_app.extensions["detector"]


@api.before_request
def batch_body_limit():
    """A batch may send more bytes than one image (werkzeug answers 413 before reading a body over the limit)."""
    if request.path == BATCH_PATH:
        request.max_content_length = body_limit(_settings(), BATCH_PATH)


def _explain_requested() -> bool:
    """The `explain` query parameter: a boolean, as the OpenAPI document declares it ("true" or "false")."""
    value = request.args.get("explain", "true")
    if value not in ("true", "false"):
        raise BadRequest(f"the query parameter 'explain' must be true or false, got {value[:40]!r}")
    return value == "true"


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
                   "max_batch_files": settings["max_batch_files"], "max_batch_bytes": settings["max_batch_bytes"],
                   "batch_seconds": settings["batch_seconds"], "max_decode_bytes": settings["max_decode_bytes"],
                   "formats": list(SUPPORTED_FORMATS), "media_types": sorted(set(MEDIA_TYPES.values()))},
    })


def _stop_if_client_gone() -> None:
    gone = request.environ.get(CLIENT_GONE_KEY)
    if gone is not None and gone.is_set():
        raise ClientGone


def _decode(data: bytes, settings: dict):
    return decode_image(data, settings["max_pixels"], settings["max_decode_bytes"])


@api.post("/predict")
def predict():
    """Classify one image (multipart field `image` or a raw image body)."""
    started = time.perf_counter()
    settings = _settings()
    explain = _explain_requested()
    data, filename = read_single_upload(request, settings["max_upload_bytes"])
    detector = _holder().get()
    _stop_if_client_gone()
    decode_start = time.perf_counter()
    decoded = _decode(data, settings)
    decode_ms = (time.perf_counter() - decode_start) * 1000
    _stop_if_client_gone()
    result = detector.predict([decoded], [data], explain=explain)[0]
    result["input"]["filename"] = filename
    result["timing_ms"] = {"decode": round(decode_ms, 2), **result["timing_ms"],
                           "total": round((time.perf_counter() - started) * 1000, 2)}
    return jsonify(result)


THUMBNAIL_GROUP = 32  # thumbnails of a batch are scored together, this many at a time (each is tiny once decoded)


@api.post("/predict/batch")
def predict_batch():
    """Classify several images; a bad file gets its own error and does not fail the others.

    Files are decoded one at a time: a photo is scored and dropped before the next file is decoded, so a batch never
    holds more than one full-size decode; thumbnails wait in groups, to share one forward pass. A batch has a time
    budget (`batch_seconds`): files not started when it runs out are answered, each, with 503 `batch_budget_spent`
    and are not scored, so that no request holds a worker for long.
    """
    started = time.perf_counter()
    settings = _settings()
    explain = _explain_requested()
    uploads = read_batch_uploads(request, settings["max_batch_files"])
    detector = _holder().get()
    entries: list[dict] = []
    waiting: list[tuple[dict, bytes, object]] = []

    def score(group: list[tuple[dict, bytes, object]]) -> None:
        results = detector.predict([d for _, _, d in group], [b for _, b, _ in group], explain=explain)
        for (entry, _, _), result in zip(group, results):
            result["input"]["filename"] = entry["filename"]
            entry.update(status=200, result=result)

    budget_ends = started + settings["batch_seconds"]
    for index, (data, filename) in enumerate(uploads):
        _stop_if_client_gone()
        entry = {"index": index, "filename": filename}
        entries.append(entry)
        try:
            if time.perf_counter() > budget_ends:
                raise BatchBudgetSpent(f"not scored: the batch used its {settings['batch_seconds']:g} s budget "
                                       f"before this file; send it again in another request")
            if len(data) > settings["max_upload_bytes"]:
                raise ImageTooLarge(f"the image is larger than the limit of {settings['max_upload_bytes']:,} bytes")
            data = bytes(data)
            decoded = _decode(data, settings)
        except DetectorError as error:
            entry.update(error_body(error.code, error.message))
            entry["status"] = status_for(error)
            continue
        if detector.route(decoded) == "photo":
            score([(entry, data, decoded)])
        else:
            waiting.append((entry, data, decoded))
            if len(waiting) == THUMBNAIL_GROUP:
                score(waiting)
                waiting = []
        del decoded
    if waiting:
        score(waiting)
    return jsonify({"results": entries, "count": len(entries),
                    "failed": sum(1 for e in entries if e["status"] != 200),
                    "timing_ms": {"total": round((time.perf_counter() - started) * 1000, 2)}})


@api.get("/openapi.json")
def openapi():
    """The OpenAPI 3 description of this API."""
    return jsonify(openapi_document(max_batch_files=_settings()["max_batch_files"]))
