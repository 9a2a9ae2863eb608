"""The HTTP API, through Flask's test client, with random-init tiny models (only the plumbing matters here)."""
import io
import os

import jsonschema
import pytest

from backend import create_app
from backend.openapi import openapi_document
from tests import images


@pytest.fixture(scope="module")
def app(make_app):
    """Small limits, so that the limit tests stay cheap (conftest's `client` serves this app)."""
    return make_app(max_upload_bytes=2_000_000, max_pixels=50_000_000, max_batch_files=4)


def assert_matches_schema(body: dict, schema_name: str) -> None:
    document = openapi_document()
    jsonschema.validate(body, {"$ref": f"#/components/schemas/{schema_name}", "components": document["components"]})


def post_file(client, data: bytes, name: str = "upload.jpg", url: str = "/api/predict"):
    return client.post(url, data={"image": (io.BytesIO(data), name)}, content_type="multipart/form-data")


def assert_error(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert_matches_schema(body, "Error")
    if code:
        assert body["error"]["code"] == code
    assert "Traceback" not in body["error"]["message"] and "/" not in body["error"]["message"].split(" ")[0]
    return body


def test_multipart_prediction_has_the_documented_shape(client):
    response = post_file(client, images.jpeg())
    assert response.status_code == 200
    body = response.get_json()
    assert_matches_schema(body, "Prediction")
    assert {m["name"] for m in body["models"]} == {"cnn", "efficientnet"}
    assert body["input"]["width"] == 64 and body["input"]["format"] == "JPEG"
    assert body["explanation"]["model"] in {"cnn", "efficientnet"}
    assert body["explanation"]["target"] in {"REAL", "FAKE"}


def test_verdict_is_the_mean_of_calibrated_model_probabilities(client):
    body = post_file(client, images.jpeg()).get_json()
    mean = sum(m["p_fake"] for m in body["models"]) / len(body["models"])
    assert body["verdict"]["p_fake"] == pytest.approx(mean, abs=1e-5)
    expected = "FAKE" if body["verdict"]["p_fake"] >= body["verdict"]["threshold"] else "REAL"
    assert body["verdict"]["label"] == expected


def test_explanation_comes_from_the_more_confident_model(client):
    body = post_file(client, images.png()).get_json()
    winner = max(body["models"], key=lambda m: m["confidence"])
    assert body["explanation"]["model"] == winner["name"]
    assert body["explanation"]["target"] == winner["label"]


def test_raw_image_body_is_accepted(client):
    response = client.post("/api/predict", data=images.png(), content_type="image/png")
    assert response.status_code == 200
    assert response.get_json()["input"]["format"] == "PNG"


def test_explain_false_skips_grad_cam(client):
    body = post_file(client, images.jpeg(), url="/api/predict?explain=false").get_json()
    assert body["explanation"] is None


def test_same_bytes_give_the_same_answer(client):
    first = post_file(client, images.jpeg()).get_json()
    second = post_file(client, images.jpeg()).get_json()
    assert first["verdict"] == second["verdict"] and first["explanation"] == second["explanation"]


def test_a_cifake_sized_image_gets_no_note_and_an_other_thumbnail_says_it_was_resized(client):
    assert post_file(client, images.jpeg(32, 32)).get_json()["domain_note"] is None
    assert "resized to 32x32" in post_file(client, images.jpeg(60, 40)).get_json()["domain_note"]


@pytest.mark.parametrize("size, profile", [((64, 64), "thumbnail"), ((64, 20), "thumbnail"), ((65, 65), "photo"),
                                           ((65, 10), "photo"), ((32, 32), "thumbnail"), ((800, 600), "photo")])
def test_routing_at_and_around_the_thumbnail_boundary(client, size, profile):
    """The longer side decides: up to 64 px the CIFAKE pair answers, beyond it the photo pair."""
    body = post_file(client, images.jpeg(*size)).get_json()
    assert body["profile"] == profile
    assert [m["name"] for m in body["models"]] == ["cnn", "efficientnet"]
    assert (body["tiles"] == 1) if profile == "thumbnail" else (body["tiles"] >= 1)


def test_a_photo_is_scored_on_its_tiles_and_the_heatmap_places_them(client):
    body = post_file(client, images.jpeg(800, 600)).get_json()
    assert_matches_schema(body, "Prediction")
    assert body["profile"] == "photo" and body["tiles"] == 16 and body["domain_note"] is None
    heatmap = body["explanation"]["heatmap"]
    assert len(heatmap["tiles"]) == 16
    for x, y, width, height in heatmap["tiles"]:
        assert 0 <= x and x + width <= 800 and 0 <= y and y + height <= 600 and width == height == 64
    assert heatmap["width"] / heatmap["height"] == pytest.approx(800 / 600, rel=0.05)


def test_a_photo_smaller_than_one_tile_on_a_side_is_padded_and_says_so(client):
    body = post_file(client, images.png(300, 40)).get_json()
    assert body["profile"] == "photo" and body["tiles"] >= 1
    assert "smaller than one 64x64 tile" in body["domain_note"]
    assert all(y == 0 for _, y, _, _ in body["explanation"]["heatmap"]["tiles"])


def test_a_blank_image_says_there_is_nothing_to_judge(client):
    from PIL import Image
    for size in ((32, 32), (640, 480)):
        body = post_file(client, images.encode(Image.new("RGB", size, (90, 90, 90)), "PNG")).get_json()
        assert "blank" in body["domain_note"]


def test_overlay_is_bounded_in_size(client):
    import base64

    from PIL import Image
    body = post_file(client, images.jpeg(1200, 900)).get_json()
    overlay = Image.open(io.BytesIO(base64.b64decode(body["explanation"]["image"].split(",", 1)[1])))
    assert overlay.format == "JPEG" and overlay.size == (512, 384), "the whole photo, at most 512 px a side"
    thumbnail = post_file(client, images.jpeg(48, 48)).get_json()
    overlay = Image.open(io.BytesIO(base64.b64decode(thumbnail["explanation"]["image"].split(",", 1)[1])))
    assert max(overlay.size) <= 256


def test_path_characters_in_the_file_name_are_neutralised(client):
    body = post_file(client, images.jpeg(), name="../../etc/passwd\\..\\x.jpg").get_json()
    assert "/" not in body["input"]["filename"] and "\\" not in body["input"]["filename"]


@pytest.mark.parametrize("data, name, status, code", [
    (b"", "empty.jpg", 400, "invalid_image"),
    (images.truncated(images.jpeg(300, 300)), "cut.jpg", 400, "invalid_image"),
    (images.truncated(images.png(300, 300)), "cut.png", 400, "invalid_image"),
    (os.urandom(4096), "random.jpg", 415, "unsupported_media_type"),
    (images.TEXT, "notes.txt", 415, "unsupported_media_type"),
    (images.HTML, "page.html", 415, "unsupported_media_type"),
    (images.SVG, "vector.svg", 415, "unsupported_media_type"),
    (images.png_bomb_header(), "bomb.png", 413, "image_too_large"),
])
def test_bad_uploads_get_clear_json_errors(client, data, name, status, code):
    assert_error(post_file(client, data, name), status, code)


@pytest.mark.parametrize("data", [images.animated_gif(), images.cmyk_jpeg(), images.png(mode="L"),
                                  images.png_16bit_grey(), images.png_with_alpha(), images.exif_rotated_jpeg(),
                                  images.png(1, 1)])
def test_awkward_but_valid_images_are_answered(client, data):
    response = post_file(client, data)
    assert response.status_code == 200
    assert_matches_schema(response.get_json(), "Prediction")


def test_exif_rotation_is_reported_as_displayed(client):
    """A 60x20 file whose EXIF says "rotate 90" is shown 20x60: the page draws it with the reported size."""
    body = post_file(client, images.exif_rotated_jpeg()).get_json()
    assert (body["input"]["width"], body["input"]["height"]) == (20, 60)


@pytest.mark.slow
def test_40_megapixel_jpeg_is_answered(client):
    from PIL import Image
    data = images.encode(Image.new("RGB", (7300, 5500), (120, 80, 40)), "JPEG", quality=80)
    response = post_file(client, data)
    assert response.status_code == 200
    assert response.get_json()["input"]["width"] == 7300


def test_missing_file_field_is_a_400(client):
    assert_error(client.post("/api/predict", data={"other": "x"}, content_type="multipart/form-data"), 400)


def test_no_body_at_all_is_a_400(client):
    assert_error(client.post("/api/predict"), 400, "invalid_image")


def test_unsupported_content_type_is_a_415(client):
    assert_error(client.post("/api/predict", data="{}", content_type="application/json"), 415)


def test_too_many_bytes_is_a_413(client):
    assert_error(post_file(client, b"\xff\xd8\xff" + b"\0" * 2_100_000), 413)


def test_too_many_bytes_in_a_raw_body_is_a_413(client):
    assert_error(client.post("/api/predict", data=b"\xff\xd8\xff" + b"\0" * 2_100_000, content_type="image/jpeg"),
                 413)


def test_unknown_route_and_wrong_method_are_json(client):
    assert_error(client.get("/api/nope"), 404, "not_found")
    response = client.get("/api/predict")
    assert_error(response, 405, "method_not_allowed")
    assert "POST" in response.headers["Allow"]


def test_batch_returns_results_in_order_with_per_file_errors(client):
    response = client.post("/api/predict/batch", content_type="multipart/form-data", data={"image": [
        (io.BytesIO(images.jpeg()), "a.jpg"), (io.BytesIO(images.TEXT), "b.txt"),
        (io.BytesIO(images.png()), "c.png")]})
    assert response.status_code == 200
    body = response.get_json()
    assert_matches_schema(body, "BatchResponse")
    assert [e["filename"] for e in body["results"]] == ["a.jpg", "b.txt", "c.png"]
    assert [e["status"] for e in body["results"]] == [200, 415, 200]
    assert body["failed"] == 1 and body["results"][1]["error"]["code"] == "unsupported_media_type"


def test_batch_answers_match_single_answers(client):
    single = post_file(client, images.png()).get_json()
    batch = client.post("/api/predict/batch", content_type="multipart/form-data", data={"image": [
        (io.BytesIO(images.jpeg()), "a.jpg"), (io.BytesIO(images.png()), "b.png")]}).get_json()
    result = batch["results"][1]["result"]
    assert result["verdict"] == single["verdict"] and result["models"] == single["models"]


def test_batch_over_the_file_limit_is_a_400(client):
    files = [(io.BytesIO(images.jpeg()), f"{i}.jpg") for i in range(5)]
    assert_error(client.post("/api/predict/batch", content_type="multipart/form-data", data={"image": files}), 400)


def test_health_ready_models_and_openapi(client):
    assert client.get("/api/health").get_json() == {"status": "ok"}
    ready = client.get("/api/ready")
    assert ready.status_code == 200
    assert_matches_schema(ready.get_json(), "Ready")
    models = client.get("/api/models").get_json()
    assert_matches_schema(models, "Models")
    assert models["limits"]["max_upload_bytes"] == 2_000_000
    document = client.get("/api/openapi.json").get_json()
    assert document["openapi"].startswith("3.") and "/api/predict" in document["paths"]


def test_cors_header_is_sent_for_api_calls(client):
    response = client.get("/api/health", headers={"Origin": "http://example.test"})
    assert response.headers.get("Access-Control-Allow-Origin") in ("*", "http://example.test")


def test_missing_models_give_503_and_not_ready(tmp_path):
    app = create_app({"weights_dir": str(tmp_path), "load_in_background": False})
    client = app.test_client()
    assert client.get("/api/health").status_code == 200
    ready = client.get("/api/ready")
    assert ready.status_code == 503 and ready.get_json()["status"] == "not_ready"
    body = assert_error(post_file(client, images.jpeg()), 503, "model_unavailable")
    assert "not found" in body["error"]["message"] and str(tmp_path) not in body["error"]["message"]


def test_unexpected_errors_are_a_500_without_internals(app, monkeypatch):
    detector = app.extensions["detector"].get()
    monkeypatch.setattr(detector, "predict", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("secret /x/y")))
    response = post_file(app.test_client(), images.jpeg())
    body = assert_error(response, 500, "internal_error")
    assert "secret" not in body["error"]["message"]


def test_an_rfc_2231_encoded_boundary_gets_a_json_error_not_a_crash(client, cifake_test_sample):
    """A boundary parameter that decodes to non-Latin-1 text once made the multipart reader raise (a 500)."""
    image = sorted((cifake_test_sample / "FAKE").glob("*.jpg"))[0].read_bytes()
    body = b'--x\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n\r\n' + image + b"\r\n--x--\r\n"
    response = client.post("/api/predict", data=body,
                           content_type="multipart/form-data; boundary*=UTF-8''%E2%82%AC")
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_image"
