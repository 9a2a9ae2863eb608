"""The API with the weights that ship in saved_models/, on real CIFAKE test images."""
import io


from utils.config import load_config


def test_shipped_models_load_and_report_their_metrics(shipped_client):
    body = shipped_client.get("/api/models").get_json()
    thumbnail_models = [m for m in body["models"] if m["profile"] == "thumbnail"]
    assert [m["name"] for m in thumbnail_models] == ["cnn", "efficientnet"]
    configured = load_config()["models"]
    for model, key in zip(thumbnail_models, ["cnn", "efficientnet"]):
        assert model["metrics"]["test"]["accuracy"] > 0.9
        assert model["input_size"] == configured[key]["input_size"] and model["temperature"] > 0


def test_ensemble_verdicts_are_right_on_committed_cifake_images(shipped_client, cifake_test_sample):
    files = sorted((cifake_test_sample / "REAL").glob("*.jpg"))[:15] + sorted(
        (cifake_test_sample / "FAKE").glob("*.jpg"))[:15]
    correct = 0
    for path in files:
        response = shipped_client.post("/api/predict?explain=false", data={"image": (io.BytesIO(path.read_bytes()),
                                                                             path.name)})
        body = response.get_json()
        assert response.status_code == 200 and body["domain_note"] is None
        correct += body["verdict"]["label"] == path.parent.name
    assert correct >= 28, f"{correct}/30"


def test_heatmap_explains_the_predicted_class_of_the_winning_model(shipped_client, cifake_test_sample):
    path = sorted((cifake_test_sample / "FAKE").glob("*.jpg"))[0]
    body = shipped_client.post("/api/predict", data={"image": (io.BytesIO(path.read_bytes()), path.name)}).get_json()
    winner = max(body["models"], key=lambda m: m["confidence"])
    assert body["explanation"]["model"] == winner["name"] and body["explanation"]["target"] == winner["label"]
    heat = body["explanation"]["heatmap"]
    input_size = {m["name"]: m["input_size"] for m in shipped_client.get("/api/models").get_json()["models"]
                  if m["profile"] == "thumbnail"}
    assert heat["width"] == heat["height"] == input_size[winner["name"]]
    assert max(max(row) for row in heat["values"]) > 0
