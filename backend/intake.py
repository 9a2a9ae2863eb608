"""Reading uploads out of a Flask request: multipart `image` field(s) or a raw image body."""
from __future__ import annotations

import re

from flask import Request

from utils.errors import ImageTooLarge, InvalidImage, UnsupportedImageType

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._ -]+")


def safe_filename(name: str | None) -> str | None:
    """A client's file name reduced to its last path component and harmless characters, for echoing back."""
    if not name:
        return None
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = _SAFE_NAME.sub("_", base).strip(" .")[:200]
    return cleaned or None


def read_single_upload(request: Request, max_bytes: int) -> tuple[bytes, str | None]:
    """The image bytes of a /predict request and the client's (sanitised) file name."""
    content_type = (request.mimetype or "").lower()
    if content_type == "multipart/form-data":
        files = request.files.getlist("image")
        if not files:
            raise InvalidImage("no file in the multipart field 'image'")
        if len(files) > 1:
            raise InvalidImage("send one file to /api/predict, or several to /api/predict/batch")
        data = files[0].read(max_bytes + 1)
        name = safe_filename(files[0].filename)
    elif content_type.startswith("image/") or content_type == "application/octet-stream":
        data = request.get_data(cache=False)
        name = None
    elif not content_type and not request.content_length:
        raise InvalidImage("no image: send multipart field 'image' or a raw body with an image Content-Type")
    else:
        raise UnsupportedImageType(
            f"Content-Type {content_type!r} is not accepted: use multipart/form-data or image/*")
    if len(data) > max_bytes:
        raise ImageTooLarge(f"the image is larger than the limit of {max_bytes:,} bytes")
    if not data:
        raise InvalidImage("the image is empty (0 bytes)")
    return data, name


def read_batch_uploads(request: Request, max_files: int) -> list[tuple[bytes, str | None]]:
    """All files in the multipart `image` fields of a /predict/batch request, in order."""
    if (request.mimetype or "").lower() != "multipart/form-data":
        raise InvalidImage("send files as multipart/form-data, each in a field named 'image'")
    files = request.files.getlist("image")
    if not files:
        raise InvalidImage("no files in the multipart field 'image'")
    if len(files) > max_files:
        raise InvalidImage(f"{len(files)} files sent; the limit is {max_files} per request")
    return [(f.read(), safe_filename(f.filename)) for f in files]
