"""FGSM in pixel space: the step size, the clipping, the ensemble loss, and the training-batch variant under bf16."""
import numpy as np
import pytest
import torch
from torch import nn

from models import build_model
from utils.evaluation.adversarial import (attack_gradient, denormalize, fgsm_gradient_sign, fgsm_step,
                                          fgsm_training_batch, mean_probability_nll, normalize_pixels, parse_epsilon,
                                          pixels_from_uint8)
from utils.evaluation.robustness import fgsm_evaluation
from utils.inference.preprocessing import PreprocessSpec, normalize_batch
from utils.inference.scoring import CalibratedModel

SPEC = PreprocessSpec(8, (0.4, 0.5, 0.6), (0.2, 0.25, 0.3))


class LinearDetector(nn.Module):
    """logit(FAKE) - logit(REAL) = sum(weight * normalised input): its input gradient's sign is sign(weight)."""

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fake = (x * self.weight).sum(dim=(1, 2, 3))
        return torch.stack([torch.zeros_like(fake), fake], dim=1)


def _member(name: str, weight: torch.Tensor, temperature: float = 1.0, spec: PreprocessSpec = SPEC):
    return CalibratedModel(name, LinearDetector(weight).eval(), spec, temperature, 0.5)


def _images_with_extremes(n: int = 6, size: int = 8, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, size, size, 3), generator=generator, dtype=torch.uint8)
    images[:, 0, :, :] = 0      # a row of black pixels and one of white ones, so clipping happens both ways
    images[:, 1, :, :] = 255
    images[:, 2, :, :] = 1      # one step from black: a 2/255 step down must clip at 0
    return images


@pytest.mark.parametrize("epsilon", [1 / 255, 2 / 255, 8 / 255])
def test_fgsm_moves_every_pixel_by_exactly_epsilon_unless_clipped(epsilon):
    weight = torch.randn(3, 8, 8, generator=torch.Generator().manual_seed(1))
    member = _member("linear", weight, temperature=0.7)
    pixels = pixels_from_uint8(_images_with_extremes())
    labels = torch.tensor([0, 1, 0, 1, 1, 0])

    adversarial = fgsm_step(pixels, attack_gradient([member], pixels, labels), epsilon)

    # Loss -log p(true class) rises fastest against the true class: down the weights for FAKE, up them for REAL.
    direction = torch.where(labels.view(-1, 1, 1, 1) == 1, -1.0, 1.0) * weight.sign()
    unclipped = pixels + epsilon * direction
    inside = (unclipped >= 0) & (unclipped <= 1)
    assert torch.allclose(adversarial, unclipped.clamp(0, 1), atol=1e-7, rtol=0)
    assert torch.allclose((adversarial - pixels).abs()[inside], torch.full_like(pixels[inside], epsilon),
                          atol=1e-6, rtol=0)
    assert (~inside).any(), "the test images must exercise clipping"
    clipped = adversarial[~inside]
    assert torch.all((clipped == 0) | (clipped == 1))
    assert adversarial.min() >= 0 and adversarial.max() <= 1


def test_batched_gradient_sign_matches_the_single_pass():
    weight = torch.randn(3, 8, 8, generator=torch.Generator().manual_seed(2))
    member = _member("linear", weight)
    pixels = pixels_from_uint8(_images_with_extremes(n=7))
    labels = torch.tensor([0, 1, 1, 0, 1, 0, 1])
    signs = fgsm_gradient_sign([member], pixels, labels, batch_size=3)
    assert signs.dtype == torch.int8
    assert torch.equal(signs, attack_gradient([member], pixels, labels).sign().to(torch.int8))


def test_normalisation_matches_the_shared_preprocessing_and_inverts():
    images = _images_with_extremes()
    pixels = pixels_from_uint8(images)
    assert torch.allclose(normalize_pixels(pixels, SPEC), normalize_batch(images, SPEC), atol=1e-5)
    assert torch.allclose(denormalize(normalize_pixels(pixels, SPEC), SPEC), pixels, atol=1e-6)


def test_ensemble_loss_is_the_cross_entropy_of_the_mean_calibrated_probability():
    generator = torch.Generator().manual_seed(3)
    members = [_member("a", torch.randn(3, 8, 8, generator=generator) * 0.05, temperature=0.6),
               _member("b", torch.randn(3, 8, 8, generator=generator) * 0.05, temperature=1.4)]
    pixels = pixels_from_uint8(_images_with_extremes())
    labels = torch.tensor([1, 0, 1, 1, 0, 0])

    gradient = attack_gradient(members, pixels, labels)

    reference_pixels = pixels.double().requires_grad_(True)
    p_fake = torch.stack([torch.sigmoid(m.model.double()(normalize_pixels(reference_pixels, m.spec).double())
                                        .diff(dim=1)[:, 0] / m.temperature) for m in members]).mean(0)
    nll = -torch.where(labels.bool(), p_fake.log(), (1 - p_fake).log()).sum()
    (expected,) = torch.autograd.grad(nll, reference_pixels)
    assert torch.allclose(gradient.double(), expected, rtol=1e-4, atol=1e-9)


def test_ensemble_loss_stays_finite_where_every_member_is_confidently_wrong():
    # p_fake rounds to 1.0 in float32 for both members on a REAL image: log(1 - mean p) would be -inf with a NaN
    # gradient, and the attack would lose its direction exactly where it matters least to lose it.
    margins = [torch.tensor([40.0, -3.0], requires_grad=True), torch.tensor([50.0, 2.0], requires_grad=True)]
    loss = mean_probability_nll(margins, torch.tensor([0, 1]))
    assert torch.isfinite(loss)
    loss.backward()
    for margin in margins:
        assert torch.isfinite(margin.grad).all()
    assert margins[0].grad[0] > 0.5 and margins[1].grad[0] > 0  # raising the wrong FAKE margin raises the loss


@pytest.mark.parametrize("text, expected", [("2/255", 2 / 255), ("0.0078", 0.0078), (0.5, 0.5), ("1", 1.0)])
def test_parse_epsilon(text, expected):
    assert parse_epsilon(text) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["abc", "0", "-1/255", "2", "1/0"])
def test_parse_epsilon_rejects_values_outside_the_pixel_range(text):
    with pytest.raises(ValueError):
        parse_epsilon(text)


def test_fgsm_evaluation_reports_clean_adversarial_and_mixed_per_scorer_and_transfer():
    generator = torch.Generator().manual_seed(4)
    members = [_member("a", torch.randn(3, 8, 8, generator=generator).sign() * 0.01),
               _member("b", torch.randn(3, 8, 8, generator=generator).sign() * 0.01)]
    images = torch.randint(80, 181, (40, 8, 8, 3), generator=generator, dtype=torch.uint8)
    # Label each image as the ensemble calls it, so every scorer starts near-perfect and a strong attack must flip
    # every ensemble verdict it was crafted against.
    with torch.no_grad():
        pixels = pixels_from_uint8(images)
        mean_p = torch.stack([torch.sigmoid(normalize_pixels(pixels, m.spec).mul(m.model.weight).sum((1, 2, 3)))
                              for m in members]).mean(0)
    labels = (mean_p >= 0.5).long().numpy()
    assert 5 < labels.sum() < 35

    result = fgsm_evaluation(members, images, labels, [1 / 255, 16 / 255], mixed_fraction=0.25, seed=0)

    assert result["images"] == {"total": 40, "real": int((labels == 0).sum()), "fake": int(labels.sum())}
    assert result["attacked_in_mixed"] == 10
    assert result["clean"]["ensemble"]["accuracy"] == 1.0
    rows = {(a["epsilon"], a["crafted_on"], a["scored_by"]): a for a in result["attacks"]}
    assert len(rows) == 2 * 3 * 3
    strong = rows[(16 / 255, "ensemble", "ensemble")]
    assert strong["white_box"] and strong["adversarial"]["accuracy"] == 0.0 and strong["flip_rate"] == 1.0
    assert strong["mixed"]["accuracy"] == pytest.approx(0.75)
    assert strong["adversarial"]["counts"]["misclassified"] == 40
    assert not rows[(16 / 255, "a", "b")]["white_box"]
    for (epsilon, source, scorer), row in rows.items():
        assert row["adversarial"]["accuracy"] <= result["clean"][scorer]["accuracy"] + 1e-12 or source != scorer


def _small_cnn() -> nn.Module:
    torch.manual_seed(0)
    model = build_model("artifact_cnn", widths=[8, 8, 16, 16], dropout=0.0)
    nn.init.normal_(model.head[1].weight, std=0.5)  # the shipped init is a zero head, which has no input gradient
    return model.to(memory_format=torch.channels_last).train()


@pytest.mark.parametrize("bf16", [False, True])
def test_training_batch_attacks_the_requested_share_in_pixel_space(bf16):
    spec = PreprocessSpec(32)
    model = _small_cnn()
    running_mean = model.stem[1].running_mean.clone()
    images = torch.randint(0, 256, (16, 32, 32, 3), generator=torch.Generator().manual_seed(5), dtype=torch.uint8)
    inputs = normalize_batch(images, spec)
    labels = torch.arange(16) % 2
    epsilon = 4 / 255

    mixed, count = fgsm_training_batch(model, inputs, labels, spec, fraction=0.25, epsilon=epsilon, bf16=bf16)

    assert count == 4 and mixed.shape == inputs.shape and mixed.dtype == inputs.dtype
    assert mixed.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(mixed[4:], inputs[4:])
    before, after = pixels_from_uint8(images[:4]), denormalize(mixed[:4], spec)
    step = (after - before).abs()
    inside = (before >= epsilon) & (before <= 1 - epsilon)
    moved = torch.isclose(step, torch.tensor(epsilon), atol=1e-5)
    assert moved[inside].float().mean() > 0.95, "nearly every pixel must move by epsilon (gradient zeros are rare)"
    assert torch.all(step <= epsilon + 1e-5)
    assert model.training, "the model's mode must be restored"
    assert all(p.grad is None for p in model.parameters()), "crafting must not leave parameter gradients"
    assert torch.equal(model.stem[1].running_mean, running_mean), "crafting must not update batch-norm statistics"


def test_training_batch_with_zero_fraction_is_untouched():
    spec = PreprocessSpec(32)
    inputs = normalize_batch(torch.zeros(4, 32, 32, 3, dtype=torch.uint8), spec)
    mixed, count = fgsm_training_batch(_small_cnn(), inputs, torch.zeros(4, dtype=torch.long), spec, 0.0, 0.01)
    assert count == 0 and mixed is inputs


def test_attack_gradient_works_inside_inference_tensors_and_no_grad():
    member = _member("linear", torch.randn(3, 8, 8, generator=torch.Generator().manual_seed(6)))
    with torch.inference_mode():
        pixels = pixels_from_uint8(_images_with_extremes())
    with torch.no_grad():
        gradient = attack_gradient([member], pixels, torch.zeros(6, dtype=torch.long))
    assert gradient.abs().sum() > 0 and np.isfinite(gradient.numpy()).all()
