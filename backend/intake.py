"""Reading uploads out of a Flask request: multipart `image` field(s) or a raw image body."""
from __future__ import annotations

import logging
import re

from flask import Request
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.http import parse_options_header

from utils.errors import BadRequest, ImageTooLarge, InvalidImage, UnsupportedImageType

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._ -]+")
OTHER_PARTS = 16  # multipart parts allowed beside the files (a few form fields); more is a 400
# python-multipart logs a warning for every body it refuses; here a refusal only means werkzeug reads the body
_PARSER_LOG = logging.getLogger(f"{__name__}.python_multipart")
_PARSER_LOG.setLevel(logging.ERROR)


def safe_filename(name: str | None) -> str | None:
    """A client's file name reduced to its last path component and harmless characters, for echoing back."""
    if not name:
        return None
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = _SAFE_NAME.sub("_", base).strip(" .")[:200]
    return cleaned or None


def _count_parts(body: bytes, boundary: str) -> int:
    """How many parts a multipart body holds at most, from its delimiters (a bound, before any parsing)."""
    try:
        return max(0, body.count(b"--" + boundary.encode("latin-1")) - 1) if boundary else 0
    except UnicodeEncodeError:
        return 0


def split_multipart(body: bytes, boundary: str) -> list[tuple[dict[str, str], bytes | memoryview]] | None:
    """The parts of a multipart/form-data body as (headers, content), read by python-multipart; None for a body it
    refuses or would misread (LF line ends, a preamble, a header line without a colon, no closing delimiter, a part
    without a content section), which the caller leaves to werkzeug's parser, so unusual bodies get the same
    treatment as before.

    Not werkzeug's parser for every body: it compiles its regular expressions anew for every boundary, and every
    client picks a new boundary per request; python-multipart parsed a 3 KB upload in 401 us against werkzeug's
    1,113 us here (docs/multipart-reader.md). Header names are lower-cased; values are decoded as Latin-1, as HTTP
    headers are. Contents are memoryviews into `body` (the parser hands each over in one piece when the body is
    written at once), so a batch's files are not copied out of its body all at once.
    """
    try:
        encoded = boundary.encode("latin-1")
    except UnicodeEncodeError:  # an RFC 2231-encoded boundary parameter can decode to any text
        return None
    if not encoded:
        return None
    view = memoryview(body)
    dash_boundary = b"--" + encoded
    unframed: list[bool] = []
    parts: list[tuple[dict[str, str], list[bytes | memoryview]]] = []
    header = {"field": b"", "value": b""}
    ended = []

    def on_part_begin() -> None:
        parts.append(({}, []))

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header["field"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header["value"] += data[start:end]

    def on_header_end() -> None:
        parts[-1][0][header["field"].strip().decode("latin-1").lower()] = header["value"].strip().decode("latin-1")
        header["field"], header["value"] = b"", b""

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if not parts[-1][1] and data.startswith(dash_boundary, start):
            # a part without a content section (RFC 2046 allows it: its headers' blank line is the delimiter's
            # CRLF): python-multipart reads the next part into this one's content, werkzeug reads it right
            unframed.append(True)
        parts[-1][1].append(view[start:end] if data is body else data[start:end])

    parser = MultipartParser(encoded, {"on_part_begin": on_part_begin, "on_header_field": on_header_field,
                                        "on_header_value": on_header_value, "on_header_end": on_header_end,
                                        "on_part_data": on_part_data, "on_end": lambda: ended.append(True)})
    parser.logger = _PARSER_LOG
    try:
        parser.write(body)
        parser.finalize()
    except FormParserError:  # malformed framing or headers, a boundary over 256 bytes, a header over its limits
        return None
    if not ended or unframed:  # finalize() does not check yet that the closing delimiter came
        return None
    return [(headers, chunks[0] if len(chunks) == 1 else b"".join(chunks)) for headers, chunks in parts]


def _multipart_files(request: Request, field: str, max_files: int) -> list[tuple[bytes | memoryview, str | None]]:
    """(content, raw file name) of every file in the multipart `field`, in order."""
    body = request.get_data(cache=True)
    boundary = request.mimetype_params.get("boundary", "")
    parts_allowed = max_files + OTHER_PARTS
    if _count_parts(body, boundary) > parts_allowed:
        raise BadRequest(f"the multipart body has {_count_parts(body, boundary):,} parts; at most {max_files} "
                         f"files are accepted per request")
    parts = split_multipart(body, boundary)
    if parts is None:  # framing python-multipart refuses (LF line ends, a preamble): werkzeug reads the cached body
        try:
            return [(f.read(), f.filename) for f in request.files.getlist(field)]
        except RequestEntityTooLarge:  # werkzeug's form limits (parts, non-file field memory), not the image's size
            raise BadRequest("the multipart body could not be read: a non-file field is over "
                             f"{request.max_form_memory_size or 0:,} bytes, or it has over "
                             f"{request.max_form_parts or 0:,} parts") from None
    files = []
    for headers, content in parts:
        # werkzeug's reader of the header value, as Flask's own parser uses: it decodes RFC 2231 `filename*=`,
        # which python-multipart's parse_options_header ignores
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
