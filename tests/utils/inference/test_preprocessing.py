"""Training and serving see identical tensors for the same file."""
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from utils.data.folders import load_image_folder
from utils.imaging.decoding import decode_image
from utils.inference.preprocessing import PreprocessSpec, fit_to_input, normalize_batch


def _serving_tensor(path: Path, spec: PreprocessSpec) -> torch.Tensor:
    decoded = decode_image(path.read_bytes())
    array = fit_to_input(decoded.image, spec.input_size)
    return normalize_batch(torch.from_numpy(array).unsqueeze(0), spec)[0]


@pytest.mark.parametrize("input_size", [32, 48])
def test_training_loader_and_serving_path_agree_bit_for_bit(cifake_test_sample, input_size):
    spec = PreprocessSpec(input_size)
    dataset = load_image_folder(cifake_test_sample, input_size, cache_dir=None, workers=1)
    for i in (0, 7, len(dataset) - 1):
        training = normalize_batch(dataset.images[i:i + 1], spec)[0]
        serving = _serving_tensor(Path(dataset.paths[i]), spec)
        assert torch.equal(training, serving), dataset.paths[i]


def test_cached_images_equal_freshly_decoded_ones(cifake_test_sample, tmp_path):
    fresh = load_image_folder(cifake_test_sample, 32, cache_dir=tmp_path, workers=1)
    cached = load_image_folder(cifake_test_sample, 32, cache_dir=tmp_path, workers=1)
    assert list(tmp_path.glob("*.npz")), "the first load should have written a cache file"
    assert torch.equal(fresh.images, cached.images) and fresh.paths == cached.paths


def test_normalisation_uses_the_metadata_mean_and_std():
    spec = PreprocessSpec(2, mean=(0.5, 0.5, 0.5), std=(0.5, 0.25, 0.125))
    images = torch.full((1, 2, 2, 3), 255, dtype=torch.uint8)
    out = normalize_batch(images, spec)
    assert out.shape == (1, 3, 2, 2)
    assert torch.allclose(out[0, :, 0, 0], torch.tensor([1.0, 2.0, 4.0]))


def test_non_square_images_are_stretched_to_the_input_size():
    image = Image.fromarray(np.zeros((10, 40, 3), dtype=np.uint8))
    assert fit_to_input(image, 32).shape == (32, 32, 3)


def test_normalize_refuses_float_input():
    with pytest.raises(ValueError, match="uint8"):
        normalize_batch(torch.zeros(1, 32, 32, 3), PreprocessSpec(32))
