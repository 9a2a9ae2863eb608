"""The OpenAPI document against the app's behaviour, by schemathesis (issue: document and behaviour disagreed).

Schemathesis generates requests from the document, positive and negative, sends them to the in-process app, and
checks every response against the document: status code, content type, headers and body schema; schema-valid
requests must be accepted and invalid ones refused. Bounded and reproducible: a fixed seed, derandomized, no example
database. What JSON Schema cannot say (which bytes are an image) is covered by explicit cases, checked the same way.

The strategies and the hook below also serve the command line, against a running server and its real models (it
leaves a crash cache in .schemathesis/):
    SCHEMATHESIS_HOOKS=tests.backend.test_openapi .venv/bin/schemathesis run -c all -n 1000 --seed 1 \
        --generation-database none http://127.0.0.1:5077/api/openapi.json
"""
from __future__ import annotations

import dataclasses
import io

import jsonschema
import numpy as np
import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import strategies as st  # noqa: E402  (hypothesis comes with schemathesis)
from PIL import Image  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402

from backend import create_app  # noqa: E402
from backend.openapi import IMAGE_MEDIA_TYPES, max_parts, openapi_document  # noqa: E402
from tests import images  # noqa: E402
from utils.imaging.decoding import MEDIA_TYPES  # noqa: E402

PIL_FORMAT = {media_type: name for name, media_type in MEDIA_TYPES.items()}
MODES = ("RGB", "L", "RGBA", "P")
# Every schemathesis 4 check that applies to a stateless API without auth (the stateful ones have no resources
# to act on here).
CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_schema_conformance", "response_headers_conformance", "negative_data_rejection",
          "positive_data_acceptance", "missing_required_header", "unsupported_method", "allow_header_conformance")
MAX_EXAMPLES = 60  # per operation in the fuzzing phase; with the coverage phase about 250 requests in all


@st.composite
def image_bytes(draw, media_type: str | None = None) -> bytes:
    """A small real image of `media_type` (any supported type if None): thumbnails for the CIFAKE pair, and sizes
    over 64 px for the tiled photo pair; several pixel modes."""
    fmt = PIL_FORMAT[media_type] if media_type else draw(st.sampled_from(sorted(PIL_FORMAT.values())))
    width, height = draw(st.integers(1, 96)), draw(st.integers(1, 96))
    mode = draw(st.sampled_from(("RGB", "L") if fmt == "JPEG" else MODES))
    pixels = np.random.default_rng(draw(st.integers(0, 2**16))).integers(0, 256, (height, width, 3), np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").convert(mode).save(buffer, format=fmt)
    return buffer.getvalue()


# The API judges the type from the bytes, so a schema-valid upload must be a real image: each media type the
# document names gets a strategy that makes one of that type (multipart parts take theirs from `encoding`).
for _media_type in IMAGE_MEDIA_TYPES:
    schemathesis.openapi.media_type(_media_type, image_bytes(_media_type))
schemathesis.openapi.media_type("application/octet-stream", image_bytes())
# The batch's files are items of an array; those take the strategy of their format, `binary`.
schemathesis.openapi.format("binary", image_bytes())

DOCUMENT = openapi_document()
BATCH_FILES = DOCUMENT["paths"]["/api/predict/batch"]["post"]["requestBody"]["content"]["multipart/form-data"][
    "schema"]["properties"]["image"]["maxItems"]
PART_LIMITS = {"/api/predict": max_parts(1), "/api/predict/batch": max_parts(BATCH_FILES)}


def _parts(value: object) -> int:
    return len(value) if isinstance(value, list) else 1  # each value of a repeated field is a part


@schemathesis.hook
def map_body(context, body):
    """Keep generated multipart bodies within the part limit the document states in words (JSON Schema cannot
    count parts): fields beside `image` that would go over it are left out. `image` itself is never touched."""
    limit = PART_LIMITS.get(context.operation.path)
    form = getattr(body, "body", body)  # a multipart body with chosen part types wraps the fields
    if limit is None or not isinstance(form, dict):
        return body
    kept, used = {}, _parts(form["image"]) if "image" in form else 0
    for name, value in form.items():
        if name == "image" or used + _parts(value) <= limit:
            kept[name] = value
            used += 0 if name == "image" else _parts(value)
    if len(kept) == len(form):
        return body
    return dataclasses.replace(body, body=kept) if form is not body else kept


# Loaded eagerly from the function the app serves (test_the_served_document_is_the_one_tested holds them equal):
# the lazy loader, schemathesis.pytest.from_fixture, fails under pytest 9.2 (it sets the removed `Node._nodeid`).
schema = schemathesis.openapi.from_dict(DOCUMENT, config=schemathesis.Config.from_dict({
    "seed": 20240611,
    "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
    "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
}))


@pytest.fixture(scope="module")
def app_without_models(tmp_path_factory):
    """No checkpoints (every model call is a 503), and small limits (413s come cheap)."""
    return create_app({"weights_dir": str(tmp_path_factory.mktemp("no_weights")), "load_in_background": False,
                       "max_upload_bytes": 2000, "max_batch_bytes": 10_000, "max_batch_files": 3})


def test_the_served_document_is_the_one_tested(app, app_without_models):
    assert app.test_client().get("/api/openapi.json").get_json() == DOCUMENT
    served = app_without_models.test_client().get("/api/openapi.json").get_json()  # the app's own batch limit
    assert served["paths"]["/api/predict/batch"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"][
        "properties"]["image"]["maxItems"] == 3


@schema.parametrize()
def test_the_api_does_what_its_document_says(case, app):
    case.call_and_validate(app=app)


PREDICT = schema["/api/predict"]["POST"]
BATCH = schema["/api/predict/batch"]["POST"]
ODD_FILES = {"text": images.TEXT, "svg": images.SVG, "html": images.HTML, "truncated png": images.png()[:60],
             "truncated jpeg": images.truncated(images.jpeg()), "empty": b"", "pixel bomb": images.png_bomb_header()}
EXPECTED = {"text": 415, "svg": 415, "html": 415, "truncated png": 400, "truncated jpeg": 400, "empty": 400,
            "pixel bomb": 413}


@pytest.mark.parametrize("kind", ODD_FILES)
@pytest.mark.parametrize("media_type", ["image/png", "multipart/form-data"])
def test_files_that_are_not_usable_images_get_documented_errors(app, kind, media_type):
    """Which bytes are an image, JSON Schema cannot say, so schemathesis never sends these: its checks still judge
    the answers (a status the document lacks, or a body off its schema, fails here)."""
    data = ODD_FILES[kind]
    body = {"image": data} if media_type == "multipart/form-data" else data
    response = PREDICT.Case(body=body, media_type=media_type, query={"explain": "false"}).call_and_validate(app=app)
    assert response.status_code == EXPECTED[kind]


def test_the_document_says_an_empty_image_is_refused():
    """The one refusal JSON Schema can state (minLength); the generated uploads are never empty, so say it here."""
    content = DOCUMENT["paths"]["/api/predict"]["post"]["requestBody"]["content"]
    for media_type, media in content.items():
        empty = {"image": ""} if media_type == "multipart/form-data" else ""
        assert not jsonschema.Draft202012Validator(media["schema"]).is_valid(empty), media_type


def test_a_batch_reports_unusable_files_per_file(app):
    files = [images.png(), *ODD_FILES.values()]
    response = BATCH.Case(body={"image": files}, media_type="multipart/form-data").call_and_validate(app=app)
    assert response.status_code == 200
    statuses = [entry["status"] for entry in response.json()["results"]]
    assert statuses == [200] + [EXPECTED[kind] for kind in ODD_FILES]


@pytest.mark.parametrize("operation, body, media_type", [
    (PREDICT, images.png(), "image/png"),
    (PREDICT, {"image": images.png()}, "multipart/form-data"),
    (BATCH, {"image": [images.png()]}, "multipart/form-data"),
])
def test_without_models_uploads_are_a_documented_503(app_without_models, operation, body, media_type):
    case = operation.Case(body=body, media_type=media_type)
    response = case.call_and_validate(app=app_without_models, excluded_checks=[not_a_server_error])
    assert response.status_code == 503


@pytest.mark.parametrize("path", ["/api/ready", "/api/models"])
def test_without_models_readiness_and_metadata_are_a_documented_503(app_without_models, path):
    response = schema[path]["GET"].Case().call_and_validate(app=app_without_models,
                                                            excluded_checks=[not_a_server_error])
    assert response.status_code == 503


@pytest.mark.parametrize("operation, body, media_type", [
    (PREDICT, bytes(100_000), "image/png"),
    (PREDICT, {"image": bytes(100_000)}, "multipart/form-data"),
    (BATCH, {"image": [bytes(50_000), bytes(50_000)]}, "multipart/form-data"),
])
def test_oversized_uploads_are_a_documented_413(app_without_models, operation, body, media_type):
    response = operation.Case(body=body, media_type=media_type).call_and_validate(app=app_without_models)
    assert response.status_code == 413
