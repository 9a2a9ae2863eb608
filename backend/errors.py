"""The one place where errors become HTTP responses: {"error": {"code", "message"}} with the right status."""
from __future__ import annotations

import logging

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

from backend.settings import BATCH_PATH

from utils.errors import (BadRequest, BatchBudgetSpent, DetectorError, ImageTooLarge, InvalidImage,
                          ModelUnavailable, RequestTimeout, UnsupportedImageType)

log = logging.getLogger(__name__)

STATUS_BY_ERROR: dict[type[DetectorError], int] = {
    InvalidImage: 400,
    BadRequest: 400,
    RequestTimeout: 408,
    ImageTooLarge: 413,
    UnsupportedImageType: 415,
    ModelUnavailable: 503,
    BatchBudgetSpent: 503,
}

HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 408: "request_timeout", 413: "image_too_large",
              415: "unsupported_media_type", 500: "internal_error", 503: "model_unavailable"}


class ClientGone(Exception):
    """The client hung up while its request waited or ran (the production server says so): stop, answer nobody."""


CLIENT_CLOSED_REQUEST = 499  # nginx's code for it; only logs ever see it


def body_too_large(path: str, limit: int) -> tuple[str, str]:
    """(code, message) of a 413 for a request body over `limit`: a batch's limit has a message of its own."""
    if path == BATCH_PATH:
        return "batch_too_large", (f"the batch is larger than the limit of {limit:,} bytes (all files and their "
                                   f"multipart framing together)")
    return "image_too_large", f"the request is larger than the limit of {limit:,} bytes"


def error_body(code: str, message: str) -> dict:
    """The JSON error shape used by every endpoint (and per file in batch results)."""
    return {"error": {"code": code, "message": message}}


def status_for(error: DetectorError) -> int:
    """HTTP status for one of the project's errors."""
    for kind, status in STATUS_BY_ERROR.items():
        if isinstance(error, kind):
            return status
    return 500


def register_error_handlers(app: Flask) -> None:
    """Map DetectorError, HTTP errors and anything unexpected to JSON; never leak internals."""

    @app.errorhandler(DetectorError)
    def _detector_error(error: DetectorError):
        return jsonify(error_body(error.code, error.message)), status_for(error)

    @app.errorhandler(ClientGone)
    def _client_gone(error: ClientGone):
        log.info("client hung up before %s %s finished; its work was stopped", request.method, request.path)
        return jsonify(error_body("client_closed_request", "the client closed the connection")), \
            CLIENT_CLOSED_REQUEST

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException):
        status = error.code or 500
        message = error.description or error.name
        code = HTTP_CODES.get(status, error.name.lower().replace(" ", "_"))
        if status == 413 and request.max_content_length:
            code, message = body_too_large(request.path, request.max_content_length)
        response = jsonify(error_body(code, message))
        if status == 405 and error.valid_methods:
            response.headers["Allow"] = ", ".join(error.valid_methods)
        return response, status

    @app.errorhandler(Exception)
    def _unexpected(error: Exception):
        log.exception("unhandled error")
        return jsonify(error_body("internal_error", "an internal error occurred; it has been logged")), 500
