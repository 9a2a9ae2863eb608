"""The OpenAPI 3.1 document for the API. Tests validate real responses against these schemas."""
from __future__ import annotations

from functools import lru_cache

from backend.intake import OTHER_PARTS
from utils.imaging.decoding import MEDIA_TYPES, SUPPORTED_FORMATS

# What the upload endpoints read: the image's type is judged from its bytes, never from a declared Content-Type.
IMAGE_MEDIA_TYPES = tuple(MEDIA_TYPES[name] for name in SUPPORTED_FORMATS)


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(properties: dict, optional: tuple[str, ...] = ()) -> dict:
    return {"type": "object", "properties": properties, "additionalProperties": False,
            "required": [key for key in properties if key not in optional]}


PROBABILITY = {"type": "number", "minimum": 0, "maximum": 1}
LABEL = {"type": "string", "enum": ["REAL", "FAKE"]}
ERROR_DETAIL = _obj({"code": {"type": "string"}, "message": {"type": "string"}})

SCHEMAS = {
    "Error": _obj({"error": ERROR_DETAIL}),
    "Verdict": _obj({"label": LABEL, "p_fake": PROBABILITY, "confidence": PROBABILITY,
                     "uncertain": {"type": "boolean"}, "threshold": PROBABILITY,
                     "basis": {"type": "string", "enum": ["models", "provenance"],
                               "description": "provenance: the file declares an AI source and that decides the "
                                              "label; p_fake and confidence stay the models' figures"}}),
    "ModelResult": _obj({"name": {"type": "string"}, "label": LABEL, "p_fake": PROBABILITY,
                         "confidence": PROBABILITY, "threshold": PROBABILITY}),
    "Explanation": _obj({
        "model": {"type": "string"}, "method": {"type": "string", "enum": ["Grad-CAM"]}, "target": LABEL,
        "layer": {"type": "string"},
        "image": {"type": "string", "pattern": "^data:image/jpeg;base64,"},
        "heatmap": _obj({"width": {"type": "integer"}, "height": {"type": "integer"},
                         "values": {"type": "array", "items": {"type": "array", "items": {
                             "anyOf": [PROBABILITY, {"type": "null"}]}},
                             "description": "rows of the map over the whole image; null where no tile was scored"},
                         "tiles": {"description": "photos: each scored tile as [x, y, width, height] in the "
                                                  "image's pixels; null for thumbnails",
                                   "anyOf": [{"type": "array", "items": {"type": "array", "items": {
                                       "type": "integer"}, "minItems": 4, "maxItems": 4}}, {"type": "null"}]}}),
    }),
    "InputFacts": _obj({"width": {"type": "integer", "minimum": 1}, "height": {"type": "integer", "minimum": 1},
                        "format": {"type": "string"}, "frames": {"type": "integer", "minimum": 1},
                        "bytes": {"type": "integer", "minimum": 1},
                        "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                        "filename": {"type": ["string", "null"]}}),
    "Prediction": _obj({
        "verdict": _ref("Verdict"),
        "profile": {"type": "string", "enum": ["thumbnail", "photo"],
                    "description": "which model pair answered: the CIFAKE pair (longer side <= 64 px) or the photo "
                                   "pair"},
        "tiles": {"type": "integer", "minimum": 1,
                  "description": "native-resolution tiles the photo pair scored (1 for a thumbnail)"},
        "models": {"type": "array", "items": _ref("ModelResult"), "minItems": 1},
        "explanation": {"anyOf": [_ref("Explanation"), {"type": "null"}]},
        "input": _ref("InputFacts"),
        "provenance": _ref("Provenance"),
        "domain_note": {"type": ["string", "null"]},
        "timing_ms": {"type": "object", "additionalProperties": {"type": "number"}},
    }),
    "Provenance": _obj({
        "declared": {"type": ["string", "null"], "enum": ["ai-generated", "ai-edited", "camera", None]},
        "source": {"type": ["string", "null"], "enum": ["c2pa", "xmp", "png-text", "exif", None]},
        "generator": {"type": ["string", "null"]},
        "c2pa": {"anyOf": [{"type": "null"}, _obj({
            "valid": {"type": "boolean", "description": "integrity holds: no hash, signature or assertion mismatch "
                                                        "(an untrusted or expired certificate does not count)"},
            "state": {"type": "string"}, "codes": {"type": "array", "items": {"type": "string"}},
            "claim_generator": {"type": ["string", "null"]}, "signer": {"type": ["string", "null"]},
            "signed_at": {"type": ["string", "null"]}, "digital_source_type": {"type": ["string", "null"]},
            "actions": {"type": "array", "items": {"type": "string"}}})]},
        "metadata": _obj({"software": {"type": ["string", "null"]}, "camera": {"type": ["string", "null"]},
                          "generator_parameters": {"type": ["string", "null"], "maxLength": 2000}}),
    }),
    "BatchEntry": _obj({"index": {"type": "integer"}, "filename": {"type": ["string", "null"]},
                        "status": {"type": "integer"}, "result": _ref("Prediction"), "error": ERROR_DETAIL},
                       optional=("result", "error")),
    "BatchResponse": _obj({"results": {"type": "array", "items": _ref("BatchEntry")},
                           "count": {"type": "integer"}, "failed": {"type": "integer"},
                           "timing_ms": {"type": "object", "additionalProperties": {"type": "number"}}}),
    "Health": _obj({"status": {"type": "string", "enum": ["ok"]}}),
    "Ready": {"type": "object", "required": ["status"],
              "properties": {"status": {"type": "string", "enum": ["ready", "not_ready"]},
                             "models": {"type": "array", "items": {"type": "string"}}, "error": ERROR_DETAIL},
              "additionalProperties": False},
    "Models": {"type": "object", "required": ["models", "ensemble", "routing", "limits"],
               "properties": {"models": {"type": "array", "items": {"type": "object", "required": [
                   "name", "arch", "input_size", "temperature", "threshold", "metrics"]}},
                              "ensemble": {"type": "object"}, "routing": {"type": "object"},
                              "limits": {"type": "object", "required": [
                                  "max_upload_bytes", "max_pixels", "max_batch_files", "max_batch_bytes",
                                  "batch_seconds", "max_decode_bytes", "formats", "media_types"],
                                         "properties": {
                                             "max_upload_bytes": {"type": "integer", "minimum": 1},
                                             "max_pixels": {"type": "integer", "minimum": 1},
                                             "max_batch_files": {"type": "integer", "minimum": 1},
                                             "max_batch_bytes": {"type": "integer", "minimum": 1},
                                             "batch_seconds": {"type": "number", "exclusiveMinimum": 0},
                                             "max_decode_bytes": {"type": "integer", "minimum": 1},
                                             "formats": {"type": "array", "items": {"type": "string"}},
                                             "media_types": {"type": "array", "items": {"type": "string"}}}}}},
}


def _errors(texts: dict[int, str]) -> dict:
    return {str(status): {"description": text, "content": {"application/json": {"schema": _ref("Error")}}}
            for status, text in texts.items()}


def _json(schema: str, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}


EXPLAIN_PARAM = {"name": "explain", "in": "query", "required": False, "schema": {"type": "boolean", "default": True},
                 "description": "exactly `true` or `false` (anything else is a 400); false skips Grad-CAM (faster) "
                                "and explanation is then null"}

def max_parts(max_files: int) -> int:
    """How many multipart parts an upload may have, files included."""
    return max_files + OTHER_PARTS  # backend/intake.py's bound; more is a 400


# A multipart part's own Content-Type is not read: the bytes decide. Clients usually send one of these.
IMAGE_PART_ENCODING = {"image": {"contentType": ", ".join(IMAGE_MEDIA_TYPES)}}
IMAGE_FILE = {"type": "string", "format": "binary", "minLength": 1,
              "description": f"one image: {', '.join(SUPPORTED_FORMATS)}, judged from its bytes (anything else is a "
                             "415); not empty (400); at most max_upload_bytes, max_pixels (413; see /api/models "
                             "limits)"}


def _other_fields(max_files: int) -> dict:
    """Fields beside `image`: ignored, but their parts count. JSON Schema cannot count parts (each value of a
    repeated field is one), so the limit is in words; a maxProperties would be wrong one way or the other."""
    return {"additionalProperties": {"description": (
        f"ignored; but the body may have at most {max_parts(max_files)} parts in all, files included, and each "
        "value of a repeated field is a part (more is a 400)")}}


SERVER_ERRORS = {500: "Internal error (no details are returned)",
                 503: "Models missing or still loading; or, under the production server, too many uploads in "
                      "flight (Retry-After)"}


def _default_max_batch_files() -> int:
    """The limit of the app serving this request, else the configured default."""
    from flask import current_app, has_app_context

    if has_app_context() and "DETECTOR_SETTINGS" in current_app.config:
        return int(current_app.config["DETECTOR_SETTINGS"]["max_batch_files"])
    from backend.settings import serving_settings

    return int(serving_settings()["max_batch_files"])


def openapi_document(max_batch_files: int | None = None) -> dict:
    """The whole OpenAPI 3.1 document; `max_batch_files` defaults to the serving app's setting."""
    return _document(max_batch_files if max_batch_files is not None else _default_max_batch_files())


@lru_cache(maxsize=4)
def _document(max_batch_files: int) -> dict:
    upload = {"required": True, "description": (
        "The image as the multipart part `image` (a file part: it needs a file name), or as the raw body. A raw "
        "body may carry any image/* Content-Type or application/octet-stream: the type is judged from the bytes, "
        "not from the header."),
        "content": {
            "multipart/form-data": {"schema": {"type": "object", "required": ["image"],
                                               "properties": {"image": IMAGE_FILE}, **_other_fields(1)},
                                    "encoding": IMAGE_PART_ENCODING},
            **{media_type: {"schema": IMAGE_FILE} for media_type in (*IMAGE_MEDIA_TYPES, "application/octet-stream")},
        }}
    # No `encoding` here: schemathesis 4.32 would send the whole array as one part without a file name.
    batch_upload = {"required": True, "description": (
        f"1 to {max_batch_files} files, each a multipart part `image` with a file name. Each file is judged on its "
        "own: an empty, undecodable, unsupported or too large file gets its own error entry (status 400, 413 or "
        "415) and does not fail the others; files not started within the batch's time budget get 503 "
        "`batch_budget_spent`."),
        "content": {"multipart/form-data": {"schema": {
            "type": "object", "required": ["image"], **_other_fields(max_batch_files),
            "properties": {"image": {"type": "array", "minItems": 1, "maxItems": max_batch_files, "items": {
                "type": "string", "format": "binary",
                "description": f"one image ({', '.join(SUPPORTED_FORMATS)}, judged from its bytes)"}}}}}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "CIFAKE real-vs-AI image detector", "version": "1.0.0",
                 "description": "Two calibrated model pairs (a custom CNN and EfficientNet-B0 each): one trained on "
                                "CIFAKE answers thumbnails, one trained on native-resolution photo tiles answers "
                                "everything larger; an ensemble verdict and a Grad-CAM explanation. Errors are "
                                "JSON: {\"error\": {\"code\", \"message\"}}."},
        "paths": {
            "/api/predict": {"post": {
                "summary": "Classify one image", "parameters": [EXPLAIN_PARAM], "requestBody": upload,
                "responses": {"200": _json("Prediction", "Verdict, per-model results, explanation"), **_errors({
                    400: "No file, two files, an empty file, an undecodable image, too many multipart parts, or a "
                         "bad parameter",
                    408: "The request body did not arrive in time (production server)",
                    413: "The body is over max_upload_bytes, or the image over max_pixels or the decode memory "
                         "budget",
                    415: "Not a supported image (judged from the bytes), or a Content-Type other than "
                         "multipart/form-data, image/* or application/octet-stream",
                    **SERVER_ERRORS})}}},
            "/api/predict/batch": {"post": {
                "summary": "Classify several images (repeat the multipart field 'image')",
                "parameters": [EXPLAIN_PARAM], "requestBody": batch_upload,
                "responses": {"200": _json("BatchResponse", "One entry per file, in order; per-file errors"),
                              **_errors({
                                  400: f"No file, over {max_batch_files} files, too many multipart parts, or a bad "
                                       "parameter",
                                  408: "The request body did not arrive in time (production server)",
                                  413: "The whole body is over the batch byte limit (`batch_too_large`)",
                                  415: "A Content-Type other than multipart/form-data",
                                  **SERVER_ERRORS})}}},
            "/api/health": {"get": {"summary": "Liveness", "responses": {"200": _json("Health", "Alive")}}},
            "/api/ready": {"get": {"summary": "Readiness", "responses": {
                "200": _json("Ready", "Models loaded"), "503": _json("Ready", "Models not loaded")}}},
            "/api/models": {"get": {"summary": "Model metadata, metrics and limits", "responses": {
                "200": _json("Models", "Models"), **_errors({503: "Models missing or still loading"})}}},
            "/api/openapi.json": {"get": {"summary": "This document", "responses": {"200": {
                "description": "OpenAPI document", "content": {"application/json": {"schema": {"type": "object"}}}}}}},
        },
        "components": {"schemas": SCHEMAS},
    }
