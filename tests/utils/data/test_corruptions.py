"""Corruptions keep uint8 (N,H,W,3), never touch their input, and are repeatable given a seed."""
import numpy as np
import pytest
import torch

from utils.data.corruptions import CORRUPTIONS, gaussian_blur, gaussian_kernel, gaussian_noise, jpeg_recompress, rescale
from utils.data.folders import load_image_folder


@pytest.fixture(scope="module")
def sample_images(cifake_test_sample) -> np.ndarray:
    """16 real CIFAKE images (8 REAL, 8 FAKE) as the loader gives them."""
    data = load_image_folder(cifake_test_sample, 32, cache_dir=None, workers=1)
    return data.images[np.r_[0:8, 100:108]].numpy()


def test_the_sweep_covers_the_requested_families_and_severities():
    by_family = {}
    for corruption in CORRUPTIONS:
        by_family.setdefault(corruption.family, []).append(corruption.parameter)
    assert by_family == {"jpeg": [95, 90, 75, 50, 30], "rescale": [0.75, 0.5], "blur": [0.5, 1.0],
                         "noise": [pytest.approx(2 / 255), pytest.approx(5 / 255)]}
    assert len({c.name for c in CORRUPTIONS}) == len(CORRUPTIONS)


@pytest.mark.parametrize("corruption", CORRUPTIONS, ids=lambda c: c.name)
def test_corruption_keeps_uint8_shape_and_is_deterministic(corruption, sample_images):
    original = sample_images.copy()
    first = corruption.apply(sample_images, seed=3)
    assert first.dtype == np.uint8 and first.shape == sample_images.shape
    assert np.array_equal(sample_images, original), "the input must not be modified"
    assert np.array_equal(first, corruption.apply(sample_images, seed=3)), "same seed, same output"
    assert not np.array_equal(first, sample_images), "a corruption must change the images"
    other_seed = corruption.apply(sample_images, seed=4)
    if corruption.seeded:
        assert not np.array_equal(first, other_seed), "a different seed must draw different noise"
    else:
        assert np.array_equal(first, other_seed), "only random corruptions may depend on the seed"


def test_corruptions_accept_the_loaders_torch_tensors(sample_images):
    for corruption in CORRUPTIONS:
        out = corruption.apply(torch.from_numpy(sample_images), seed=0)
        assert isinstance(out, np.ndarray) and out.dtype == np.uint8
        assert np.array_equal(out, corruption.apply(sample_images, seed=0))


@pytest.mark.parametrize("bad", [np.zeros((2, 8, 8, 3), np.float32), np.zeros((8, 8, 3), np.uint8),
                                 np.zeros((2, 8, 8, 4), np.uint8)])
def test_corruptions_reject_anything_but_uint8_nhwc_rgb(bad):
    for corruption in CORRUPTIONS:
        with pytest.raises(ValueError):
            corruption.apply(bad, seed=0)


def test_noise_has_the_requested_standard_deviation_in_pixel_units():
    gray = np.full((8, 32, 32, 3), 128, np.uint8)
    for sigma in (2 / 255, 5 / 255):
        noisy = gaussian_noise(gray, sigma, seed=0).astype(np.float64)
        assert noisy.std() == pytest.approx(sigma * 255, rel=0.05)
        assert noisy.mean() == pytest.approx(128, abs=0.1)


def test_blur_keeps_flat_images_and_smooths_edges_more_with_a_larger_sigma():
    assert gaussian_kernel(1.0).sum() == pytest.approx(1.0) and len(gaussian_kernel(1.0)) == 7
    flat = np.full((1, 16, 16, 3), 77, np.uint8)
    assert np.array_equal(gaussian_blur(flat, 1.0), flat)
    checker = ((np.indices((16, 16)).sum(0) % 2) * 255).astype(np.uint8)[None, :, :, None].repeat(3, axis=3)
    spread = [gaussian_blur(checker, sigma).astype(float).std() for sigma in (0.5, 1.0)]
    assert checker.std() > spread[0] > spread[1]


def test_rescale_keeps_flat_images_and_loses_detail_when_halved():
    flat = np.full((1, 32, 32, 3), 200, np.uint8)
    assert np.array_equal(rescale(flat, 0.5), flat)
    checker = ((np.indices((32, 32)).sum(0) % 2) * 255).astype(np.uint8)[None, :, :, None].repeat(3, axis=3)
    assert rescale(checker, 0.5).astype(float).std() < 0.5 * checker.std()


def test_stronger_jpeg_compression_changes_never_compressed_images_more():
    # Synthetic images: CIFAKE files are JPEGs already, and re-encoding at their own quality is nearly a no-op.
    rng = np.random.default_rng(0)
    smooth = np.cumsum(rng.normal(0, 6, (4, 32, 32, 3)), axis=2) + 128
    images = np.clip(smooth, 0, 255).astype(np.uint8)
    error = [np.abs(jpeg_recompress(images, q).astype(int) - images).mean() for q in (95, 75, 30)]
    assert 0 < error[0] < error[1] < error[2]
