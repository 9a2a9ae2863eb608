"""The one scorer: a batch of uint8 images in, each model's and the ensemble's calibrated p_fake out, routed to the
pair that answers each image; the service, the batch CLI and the photo evaluation all read these arrays."""
from __future__ import annotations

import numpy as np
import pytest

from backend.detector import Detector
from backend.settings import serving_settings
from utils.imaging.decoding import decode_image
from utils.inference.scorer import Scorer

FILES = serving_settings()["model_files"]


@pytest.fixture(scope="module")
def scorer(tiny_weights_dir) -> Scorer:
    return Scorer.from_weights_dir(tiny_weights_dir, FILES, runtime="torch", threads=1)


def _images(seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    sizes = [(32, 32), (64, 48), (65, 65), (200, 130), (30, 300)]  # (height, width)
    return [rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8) for h, w in sizes]


def test_each_image_is_routed_by_its_longer_side_and_scored_by_every_model_of_its_pair(scorer):
    batch = scorer(_images())
    assert batch.profiles == ["thumbnail", "thumbnail", "photo", "photo", "photo"]
    assert batch.p_fake.shape == (5, 2) and not np.isnan(batch.p_fake).any()
    assert ((batch.p_fake > 0) & (batch.p_fake < 1)).all()
    assert list(batch.tiles[:2]) == [1, 1] and (batch.tiles[2:] > 1).all()


def test_the_ensemble_is_the_mean_of_its_pair_and_thresholds_follow_the_pair(scorer):
    batch = scorer(_images())
    np.testing.assert_allclose(batch.ensemble, batch.p_fake.mean(axis=1))
    for i, profile in enumerate(batch.profiles):
        assert batch.ensemble_thresholds[i] == scorer.thresholds[profile]
        assert list(batch.thresholds[i]) == [m.threshold for m in scorer.pairs[profile]]


def test_a_batch_scores_each_image_as_it_would_be_scored_alone(scorer):
    images = _images(1)
    together = scorer(images)
    for i, image in enumerate(images):
        alone = scorer([image])
        np.testing.assert_allclose(together.p_fake[i], alone.p_fake[0], rtol=1e-5, atol=1e-6)
        assert together.tiles[i] == alone.tiles[0]


def test_a_smaller_tile_budget_scores_fewer_tiles(scorer):
    image = _images()[3]
    assert scorer([image], max_tiles=2).tiles[0] <= 2 < scorer([image]).tiles[0]


def test_a_pair_without_one_of_its_models_leaves_that_column_empty(tiny_weights_dir):
    only_cnn = {key: file for key, file in FILES.items() if key != "efficientnet_photo"}
    scorer = Scorer.from_weights_dir(tiny_weights_dir, only_cnn, runtime="torch", threads=1, explanations=False)
    batch = scorer(_images())
    photo = [i for i, p in enumerate(batch.profiles) if p == "photo"]
    assert np.isnan(batch.p_fake[photo, 1]).all() and not np.isnan(batch.p_fake[photo, 0]).any()
    np.testing.assert_allclose(batch.ensemble[photo], batch.p_fake[photo, 0])


def test_explaining_needs_the_evidence_kept_and_names_the_more_confident_model(scorer):
    images = _images()
    with pytest.raises(ValueError, match="keep_evidence"):
        scorer.explain(scorer(images), 0, images[0])
    batch = scorer(images, keep_evidence=True)
    for i, image in enumerate(images):
        heat = scorer.explain(batch, i, image)
        k, model = scorer.winner(batch, i)
        assert heat.model is model
        assert (heat.boxes is None) == (batch.profiles[i] == "thumbnail")
        if heat.boxes is not None:
            assert len(heat.boxes) == batch.tiles[i]


def test_the_service_reports_the_scorers_numbers(tiny_weights_dir, scorer):
    import io

    from PIL import Image

    detector = Detector.from_weights_dir(tiny_weights_dir, FILES, runtime="torch", threads=1)
    images = _images(2)
    raw = []
    for array in images:
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, "PNG")
        raw.append(buffer.getvalue())
    results = detector.predict([decode_image(data) for data in raw], raw, explain=False)
    batch = scorer(images)
    for i, result in enumerate(results):
        assert result["profile"] == batch.profiles[i] and result["tiles"] == batch.tiles[i]
        assert [m["p_fake"] for m in result["models"]] == pytest.approx(batch.p_fake[i], abs=1e-6)
        assert result["verdict"]["p_fake"] == pytest.approx(batch.ensemble[i], abs=1e-6)
