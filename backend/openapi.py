"""The OpenAPI 3.1 document for the API. Tests validate real responses against these schemas."""
from __future__ import annotations

from functools import lru_cache


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
                     "uncertain": {"type": "boolean"}, "threshold": PROBABILITY}),
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
        "domain_note": {"type": ["string", "null"]},
        "timing_ms": {"type": "object", "additionalProperties": {"type": "number"}},
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
    "Models": {"type": "object", "required": ["models", "ensemble", "limits"],
               "properties": {"models": {"type": "array", "items": {"type": "object", "required": [
                   "name", "arch", "input_size", "temperature", "threshold", "metrics"]}},
                              "ensemble": {"type": "object"}, "limits": {"type": "object"}}},
}


def _error_responses(*statuses: int) -> dict:
    text = {400: "No file, empty file, or undecodable image", 404: "Not found", 405: "Method not allowed",
            413: "Too many bytes or too many pixels", 415: "Not a supported image type (judged from the bytes)",
            500: "Internal error (no details are returned)", 503: "Models missing or still loading"}
    return {str(s): {"description": text[s], "content": {"application/json": {"schema": _ref("Error")}}}
            for s in statuses}


def _json(schema: str, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}


EXPLAIN_PARAM = {"name": "explain", "in": "query", "required": False, "schema": {"type": "boolean", "default": True},
                 "description": "false skips Grad-CAM (faster); explanation is then null"}


@lru_cache(maxsize=1)
def openapi_document() -> dict:
    """The whole OpenAPI 3.1 document."""
    upload = {"content": {
        "multipart/form-data": {"schema": {"type": "object", "required": ["image"],
                                           "properties": {"image": {"type": "string", "format": "binary"}}}},
        "image/*": {"schema": {"type": "string", "format": "binary"}}}, "required": True}
    return {
        "openapi": "3.1.0",
        "info": {"title": "CIFAKE real-vs-AI image detector", "version": "1.0.0",
                 "description": "Two calibrated model pairs (a custom CNN and EfficientNet-B0 each): one trained on "
                                "CIFAKE answers thumbnails, one trained on native-resolution photo tiles answers "
                                "everything larger; an ensemble verdict and a Grad-CAM explanation."},
        "paths": {
            "/api/predict": {"post": {
                "summary": "Classify one image", "parameters": [EXPLAIN_PARAM], "requestBody": upload,
                "responses": {"200": _json("Prediction", "Verdict, per-model results, explanation"),
                              **_error_responses(400, 413, 415, 500, 503)}}},
            "/api/predict/batch": {"post": {
                "summary": "Classify several images (repeat the multipart field 'image')",
                "parameters": [EXPLAIN_PARAM],
                "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
                    "type": "object", "properties": {"image": {"type": "array", "items": {
                        "type": "string", "format": "binary"}}}}}}},
                "responses": {"200": _json("BatchResponse", "One entry per file, in order; per-file errors"),
                              **_error_responses(400, 413, 500, 503)}}},
            "/api/health": {"get": {"summary": "Liveness", "responses": {"200": _json("Health", "Alive")}}},
            "/api/ready": {"get": {"summary": "Readiness", "responses": {
                "200": _json("Ready", "Models loaded"), "503": _json("Ready", "Models not loaded")}}},
            "/api/models": {"get": {"summary": "Model metadata, metrics and limits", "responses": {
                "200": _json("Models", "Models"), **_error_responses(503)}}},
            "/api/openapi.json": {"get": {"summary": "This document",
                                          "responses": {"200": {"description": "OpenAPI document"}}}},
        },
        "components": {"schemas": SCHEMAS},
    }
