"""Grad-CAM explanations (pytorch-grad-cam); the overlay a person looks at is utils/inference/overlay.py."""
from __future__ import annotations

import logging
import threading

import numpy as np
import torch
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.image import scale_cam_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn

from models import GradCamSplit
from utils.inference.explain_graph import explain_graph
from utils.inference.gradient_graph import UnsupportedLayer
from utils.inference.runtime import OnnxGradient

log = logging.getLogger(__name__)


class _FromLayerOutput(nn.Module):
    """The part of a model after its Grad-CAM layer, fed that layer's output through an identity module.

    Grad-CAM needs the layer's activations and the gradient of the target logit with respect to them. Hooking an
    identity that stands in for the layer gives exactly those, while the layers before it never run again.
    """

    def __init__(self, suffix: nn.Module) -> None:
        super().__init__()
        self.layer_output = nn.Identity()
        self.suffix = suffix

    def forward(self, layer_output: torch.Tensor) -> torch.Tensor:
        return self.suffix(self.layer_output(layer_output))

    def train(self, mode: bool = True) -> "_FromLayerOutput":
        """Stays in eval mode for good. pytorch-grad-cam calls `.eval()` on every explanation; nn.Module's walk
        over the hundreds of modules in the traced EfficientNet suffix took about 3 ms of each explanation."""
        if mode:
            raise RuntimeError("the Grad-CAM copy of a model is for inference only")
        if self.training:
            super().train(False)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Nothing to clear: every parameter is frozen, so no gradient is ever stored on one. pytorch-grad-cam
        calls this on every explanation, and walking the parameters cost about as much as `.eval()` did."""


class _GradCamAtSize(GradCAM):
    """pytorch-grad-cam's GradCAM, upsampling its map to the model's input size rather than to the tensor it is fed
    (here the layer output, which is smaller)."""

    def __init__(self, model: nn.Module, target_layers: list[nn.Module], size: int) -> None:
        super().__init__(model=model, target_layers=target_layers)
        self._size = size

    def get_target_width_height(self, input_tensor: torch.Tensor) -> tuple[int, int]:
        return self._size, self._size


def grad_cam_map(activations: np.ndarray, gradients: np.ndarray, size: int) -> np.ndarray:
    """pytorch-grad-cam's GradCAM map for one target layer, from activations and gradients computed elsewhere.

    The same steps as the library's GradCAM forward, in its order: channel weights are the spatial mean of the
    gradients, the weighted activations are summed over channels, clipped at zero, min-max scaled and resized
    (`scale_cam_image`), then aggregated over the one layer and scaled again.
    """
    weights = np.mean(gradients, axis=(2, 3))
    cam = np.maximum((weights[:, :, None, None] * activations).sum(axis=1), 0)
    per_layer = scale_cam_image(cam, (size, size))[:, None, :]
    return scale_cam_image(np.mean(np.maximum(per_layer, 0), axis=1))[0]


class GradCamExplainer:
    """Grad-CAM for one model, computed from the output of its Grad-CAM layer.

    The served forward pass already returns that output, so an explanation costs one pass through the part of
    the network after the layer and its backward, instead of a second full forward and backward. Two ways:
    - ONNX Runtime (runtime="onnxruntime", both shipped models): the backward pass written out as a graph
      (utils/inference/gradient_graph.py), and pytorch-grad-cam's weighting and scaling on its result (`grad_cam_map`);
    - pytorch-grad-cam's GradCAM on PyTorch autograd (runtime="torch", or a layer the graph has no rule for, or
      no ONNX Runtime): the suffix runs as an equivalent, faster copy (utils/inference/explain_graph.py). The hooks
      pytorch-grad-cam attaches live on a private identity module, never on the shared model, and a lock keeps
      concurrent requests from sharing them; the `with` block removes them after each call.
    Both give the same map as pytorch-grad-cam run on the whole model (tests/utils/inference/test_gradcam.py).
    """

    def __init__(self, split: GradCamSplit, input_size: int, runtime: str = "torch", threads: int = 1,
                 tile_batch: int | None = None) -> None:
        with torch.no_grad():
            example = split.prefix(torch.zeros(1, 3, input_size, input_size))
            num_classes = split.suffix(example).shape[1]
        self._input_size = input_size
        self._gradient = self._tile_gradient = None
        if runtime == "onnxruntime":
            try:
                self._gradient = OnnxGradient(split.suffix, example, num_classes, threads)
                if tile_batch:
                    self._tile_gradient = OnnxGradient(split.suffix, example, num_classes, threads, tile_batch)
            except (UnsupportedLayer, ImportError) as exc:
                log.info("Grad-CAM uses PyTorch autograd for this model (%s)", exc)
                self._gradient = self._tile_gradient = None
            except Exception:  # an export failure must not take the service down; autograd still works
                log.exception("exporting the Grad-CAM gradient graph failed; using PyTorch autograd")
                self._gradient = self._tile_gradient = None
        self.runtime = "onnxruntime" if self._gradient else "torch"
        self._model = None if self._gradient else _FromLayerOutput(explain_graph(split.suffix, example)).eval()
        self._lock = threading.Lock()

    def tile_gradients(self, layer_outputs: np.ndarray, class_index: int) -> np.ndarray:
        """d(logit of `class_index`)/d(layer output) for each of a photo's tiles, (K, C, h, w)."""
        activations = np.ascontiguousarray(layer_outputs, dtype=np.float32)
        if self._tile_gradient is not None:  # one ONNX call per `batch` tiles, the last one zero-padded
            batch = self._tile_gradient.batch
            out = []
            for start in range(0, len(activations), batch):
                chunk = activations[start:start + batch]
                padded = np.zeros((batch, *activations.shape[1:]), dtype=np.float32)
                padded[:len(chunk)] = chunk
                out.append(self._tile_gradient(padded, class_index)[:len(chunk)])
            return np.concatenate(out)
        if self._gradient is not None:
            return np.concatenate([self._gradient(activations[k:k + 1], class_index)
                                   for k in range(len(activations))])
        leaf = torch.from_numpy(activations.copy()).requires_grad_(True)
        with self._lock, torch.enable_grad():
            self._model(leaf)[:, class_index].sum().backward()
        return leaf.grad.numpy()

    def heatmap(self, layer_output: np.ndarray | torch.Tensor, class_index: int) -> np.ndarray:
        """Grad-CAM map in [0, 1], `input_size` pixels square, for one image's layer output (1, C, h, w)."""
        activations = np.asarray(layer_output, dtype=np.float32)
        if self._gradient is not None:
            return grad_cam_map(activations, self._gradient(activations, class_index), self._input_size)
        leaf = torch.as_tensor(activations).clone().requires_grad_(True)
        with self._lock, torch.enable_grad(), _GradCamAtSize(self._model, [self._model.layer_output],
                                                             self._input_size) as cam:
            maps = cam(input_tensor=leaf, targets=[ClassifierOutputTarget(class_index)])
        return np.asarray(maps[0], dtype=np.float32)
