"""Reading uploads out of a Flask request: multipart `image` field(s) or a raw image body."""
from __future__ import annotations

import re

from flask import Request
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.http import parse_options_header

from utils.errors import BadRequest, ImageTooLarge, InvalidImage, UnsupportedImageType

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._ -]+")
OTHER_PARTS = 16  # multipart parts allowed beside the files (a few form fields); more is a 400


def safe_filename(name: str | None) -> str | None:
    """A client's file name reduced to its last path component and harmless characters, for echoing back."""
    if not name:
        return None
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = _SAFE_NAME.sub("_", base).strip(" .")[:200]
    return cleaned or None


def split_multipart(body: bytes, boundary: str) -> list[tuple[dict[str, str], bytes]] | None:
    """The parts of a plainly formed multipart/form-data body as (headers, content), or None for anything else.

    Werkzeug's parser compiles its regular expressions anew for every boundary, and every client picks a new
    boundary per request: that cost about 1 ms of server CPU per upload here, a fifth of a 32x32 request. This
    handles the form every HTTP client sends (no preamble, CRLF line ends, a closing delimiter); for anything
    else it returns None and the caller uses werkzeug's parser, so unusual bodies get the same treatment as before.
    Header names are lower-cased; values are decoded as Latin-1, as HTTP headers are. Contents are memoryviews
    into `body`.
    """
    if not boundary or len(boundary) > 200:
        return None
    try:
        delimiter = b"--" + boundary.encode("latin-1")
    except UnicodeEncodeError:  # an RFC 2231-encoded boundary parameter can decode to any text
        return None
    if not body.startswith(delimiter):
        return None
    view = memoryview(body)  # parts are views: a batch's files are not copied out of its body all at once
    parts = []
    position = len(delimiter)
    while True:
        if body.startswith(b"--", position):
            return parts if body[position + 2:].strip(b"\r\n") == b"" else None
        if not body.startswith(b"\r\n", position):
            return None
        head_end = body.find(b"\r\n\r\n", position + 2)
        if head_end < 0:
            return None
        headers = {}
        for line in body[position + 2:head_end].split(b"\r\n"):
            name, colon, value = line.partition(b":")
            if not colon or not name.strip():
                return None
            headers[name.strip().decode("latin-1").lower()] = value.strip().decode("latin-1")
        content_start = head_end + 4
        content_end = body.find(b"\r\n" + delimiter, content_start)
        if content_end < 0:
            return None
        parts.append((headers, view[content_start:content_end]))
        position = content_end + 2 + len(delimiter)


def _count_parts(body: bytes, boundary: str) -> int:
    """How many parts a multipart body holds at most, from its delimiters (a bound, before any parsing)."""
    try:
        return max(0, body.count(b"--" + boundary.encode("latin-1")) - 1) if boundary else 0
    except UnicodeEncodeError:
        return 0


def _multipart_files(request: Request, field: str, max_files: int) -> list[tuple[bytes | memoryview, str | None]]:
    """(content, raw file name) of every file in the multipart `field`, in order."""
    body = request.get_data(cache=True)
    boundary = request.mimetype_params.get("boundary", "")
    parts_allowed = max_files + OTHER_PARTS
    if _count_parts(body, boundary) > parts_allowed:
        raise BadRequest(f"the multipart body has {_count_parts(body, boundary):,} parts; at most {max_files} "
                         f"files are accepted per request")
    parts = split_multipart(body, boundary)
    if parts is None:  # unusual framing (LF line ends, a preamble): werkzeug's parser reads the cached body
        try:
            return [(f.read(), f.filename) for f in request.files.getlist(field)]
        except RequestEntityTooLarge:  # werkzeug's form limits (parts, non-file field memory), not the image's size
            raise BadRequest("the multipart body could not be read: a non-file field is over "
                             f"{request.max_form_memory_size or 0:,} bytes, or it has over "
                             f"{request.max_form_parts or 0:,} parts") from None
    files = []
    for headers, content in parts:
        _, options = parse_options_header(headers.get("content-disposition", ""))
        if options.get("name") == field and "filename" in options:  # werkzeug ignores the disposition type too
            files.append((content, options["filename"]))
    return files


def read_single_upload(request: Request, max_bytes: int) -> tuple[bytes, str | None]:
    """The image bytes of a /predict request and the client's (sanitised) file name."""
    content_type = (request.mimetype or "").lower()
    if content_type == "multipart/form-data":
        files = _multipart_files(request, "image", max_files=1)
        if not files:
            raise InvalidImage("no file in the multipart field 'image'")
        if len(files) > 1:
            raise InvalidImage("send one file to /api/predict, or several to /api/predict/batch")
        data, name = bytes(files[0][0]), safe_filename(files[0][1])
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


def read_batch_uploads(request: Request, max_files: int) -> list[tuple[bytes | memoryview, str | None]]:
    """All files in the multipart `image` fields of a /predict/batch request, in order (contents may be views
    into the request body)."""
    if (request.mimetype or "").lower() != "multipart/form-data":
        raise UnsupportedImageType("send files as multipart/form-data, each in a field named 'image'")
    files = _multipart_files(request, "image", max_files)
    if not files:
        raise InvalidImage("no files in the multipart field 'image'")
    if len(files) > max_files:
        raise InvalidImage(f"{len(files)} files sent; the limit is {max_files} per request")
    return [(data, safe_filename(name)) for data, name in files]
