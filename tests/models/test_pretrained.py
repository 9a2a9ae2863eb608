"""EfficientNet-B0's ImageNet path, tested with a weights file the test writes itself (no download)."""
import pytest
import torch
from torchvision.models import efficientnet_b0

from models import build_model, load_imagenet_weights


@pytest.mark.parametrize("upsample", [2, 1])
def test_local_imagenet_file_fills_the_backbone_and_keeps_our_head(tmp_path, upsample):
    torch.manual_seed(1)
    imagenet_like = efficientnet_b0(weights=None, num_classes=1000)
    path = tmp_path / "efficientnet_b0_imagenet.pth"
    torch.save(imagenet_like.state_dict(), path)

    model = build_model("efficientnet_b0", upsample=upsample)
    head_before = model.classifier[1].weight.clone()
    load_imagenet_weights(model, str(path))

    for name, tensor in imagenet_like.state_dict().items():
        if not name.startswith("classifier."):
            assert torch.equal(model.state_dict()[name], tensor), name
    assert torch.equal(model.classifier[1].weight, head_before)
    assert model.classifier[1].out_features == 2


def test_file_of_another_architecture_is_refused(tmp_path):
    path = tmp_path / "not_efficientnet.pth"
    torch.save(build_model("artifact_cnn").state_dict(), path)
    with pytest.raises(ValueError, match="does not match EfficientNet-B0"):
        load_imagenet_weights(build_model("efficientnet_b0"), str(path))


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_imagenet_weights(build_model("efficientnet_b0"), str(tmp_path / "nope.pth"))
