"""The multipart reader (python-multipart) gives exactly what werkzeug's parser gives, and leaves unusual bodies to
werkzeug."""
import logging
import random

import pytest
from flask import Flask, request

from backend.intake import _multipart_files, split_multipart

B = "b0undary-42"
JPEG = b"\xff\xd8\xff\xe0 not really a jpeg \r\n--b0undary-4 almost a delimiter \r\n\r\n\xff\xd9"


def _part(headers: str, content: bytes) -> bytes:
    return f"--{B}\r\n{headers}\r\n\r\n".encode() + content + b"\r\n"


BODIES = {
    "one file, as curl sends it": _part('Content-Disposition: form-data; name="image"; filename="a.jpg"\r\n'
                                        "Content-Type: image/jpeg", JPEG) + f"--{B}--\r\n".encode(),
    "a text field, then two files": (_part('Content-Disposition: form-data; name="note"', b"hello")
                                     + _part('Content-Disposition: form-data; name="image"; filename="x.png"', b"1")
                                     + _part('Content-Disposition: form-data; name="image"; filename="y.png"', JPEG)
                                     + f"--{B}--".encode()),
    "a non-ASCII file name (filename*)": _part("Content-Disposition: form-data; name=\"image\"; "
                                               "filename*=UTF-8''caf%C3%A9.jpg", JPEG) + f"--{B}--\r\n".encode(),
    "an empty file": _part('Content-Disposition: form-data; name="image"; filename="e.jpg"', b"")
    + f"--{B}--\r\n".encode(),
    "a field without a file name": _part('Content-Disposition: form-data; name="image"', JPEG)
    + f"--{B}--\r\n".encode(),
}
UNUSUAL = {
    "a preamble": b"preamble\r\n" + BODIES["one file, as curl sends it"],
    "no closing delimiter": _part('Content-Disposition: form-data; name="image"; filename="a.jpg"', JPEG),
    "bare LF line ends": BODIES["one file, as curl sends it"].replace(b"\r\n", b"\n"),
    "a part without a content section": (f"--{B}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\n".encode()
                                         + BODIES["one file, as curl sends it"]),  # werkzeug's encoder sends it
    "a header line without a colon": _part('Content-Disposition: form-data; name="image"; filename="a.jpg"\r\n'
                                           "garbage", JPEG) + f"--{B}--\r\n".encode(),
}


def _both_ways(body: bytes) -> tuple[list, list]:
    """(our reader's files, werkzeug's files), each from its own request, since reading a file consumes it."""
    app = Flask(__name__)
    context = {"method": "POST", "data": body, "content_type": f'multipart/form-data; boundary="{B}"'}
    with app.test_request_context("/", **context):
        ours = [(bytes(data), name) for data, name in _multipart_files(request, "image", max_files=32)]
    with app.test_request_context("/", **context):
        theirs = [(f.read(), f.filename) for f in request.files.getlist("image")]
    return ours, theirs


@pytest.mark.parametrize("case", BODIES)
def test_plain_bodies_are_read_exactly_as_werkzeug_reads_them(case):
    assert split_multipart(BODIES[case], B) is not None, "this body should take the fast path"
    ours, theirs = _both_ways(BODIES[case])
    assert ours == theirs


@pytest.mark.parametrize("case", UNUSUAL)
def test_unusual_bodies_are_left_to_werkzeug(case):
    assert split_multipart(UNUSUAL[case], B) is None
    ours, theirs = _both_ways(UNUSUAL[case])
    assert ours == theirs


def test_the_content_is_split_at_the_delimiter_not_at_lookalikes():
    parts = split_multipart(BODIES["one file, as curl sends it"], B)
    assert [bytes(content) for _, content in parts] == [JPEG]
    assert parts[0][0]["content-type"] == "image/jpeg"


def test_batch_files_are_views_into_the_body_not_copies():
    app = Flask(__name__)
    with app.test_request_context("/", method="POST", data=BODIES["a text field, then two files"],
                                  content_type=f'multipart/form-data; boundary="{B}"'):
        files = _multipart_files(request, "image", max_files=32)
        assert [(bytes(data), name) for data, name in files] == [(b"1", "x.png"), (JPEG, "y.png")]
        assert all(isinstance(data, memoryview) and data.obj is request.get_data() for data, _ in files)


def test_a_body_left_to_werkzeug_is_not_logged_as_a_warning(caplog):
    """python-multipart warns on every body it refuses; here that only means werkzeug reads it."""
    with caplog.at_level(logging.DEBUG):
        assert split_multipart(UNUSUAL["bare LF line ends"], B) is None
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]


def test_a_boundary_outside_latin_1_is_left_to_werkzeug_not_an_error():
    assert split_multipart(BODIES["one file, as curl sends it"], "caf\u00e9-\u20ac") is None


def test_mutated_bodies_never_make_the_reader_raise():
    """Seeded mutations of the plain bodies (deleted bytes, inserted delimiters and line ends, truncation): the
    reader returns files or hands the body to werkzeug, and never raises (which would be a 500)."""
    rng = random.Random(0)
    app = Flask(__name__)
    for _ in range(500):
        body = bytearray(rng.choice(list(BODIES.values())))
        for _ in range(rng.randint(1, 4)):
            position = rng.randrange(len(body) + 1)
            roll = rng.random()
            if roll < 0.4:
                del body[position:position + rng.randint(1, 6)]
            elif roll < 0.8:
                body[position:position] = rng.choice([b"\r\n", b"--", b":", b"\r\n\r\n", B.encode(), b"\n", b'"',
                                                      b"\xff", b"filename*=UTF-8''%ff"])
            else:
                del body[position:]
        with app.test_request_context("/", method="POST", data=bytes(body),
                                      content_type=f'multipart/form-data; boundary="{B}"'):
            files = _multipart_files(request, "image", max_files=32)
        assert all(isinstance(data, (bytes, memoryview)) for data, _ in files)
