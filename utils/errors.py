"""The project's small family of errors. The HTTP layer maps each one to a status code in exactly one place."""
from __future__ import annotations


class DetectorError(Exception):
    """Base: `code` is a stable machine-readable string, the message is safe to show a client."""

    code = "detector_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidImage(DetectorError):
    """No image, an empty one, or bytes that do not decode."""

    code = "invalid_image"


class BadRequest(DetectorError):
    """A request the API cannot take for a reason other than its image: a bad parameter, a malformed body."""

    code = "bad_request"


class RequestTimeout(DetectorError):
    """The request body did not arrive in time, or decoding it would take longer than its budget."""

    code = "request_timeout"


class BatchBudgetSpent(DetectorError):
    """A batch ran out of its time budget before this file was started: the file was not scored."""

    code = "batch_budget_spent"


class ImageTooLarge(DetectorError):
    """Too many bytes or too many pixels."""

    code = "image_too_large"


class UnsupportedImageType(DetectorError):
    """The bytes are not one of the supported image formats."""

    code = "unsupported_media_type"


class ModelUnavailable(DetectorError):
    """A model's weights are missing, corrupt, or do not match their metadata."""

    code = "model_unavailable"
