"""Grad-CAM explanations (pytorch-grad-cam) and the overlay image a person looks at."""
from __future__ import annotations

import base64
import copy
import threading

import cv2
import numpy as np
import torch
from PIL import Image
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn


class GradCamExplainer:
    """Grad-CAM for one model, on a private copy of it, one call at a time.

    pytorch-grad-cam's hooks are state on the model: while they are attached, every forward through that model
    records activations. Explaining on a private copy, under a lock, keeps them away from the plain forward passes
    that other requests run concurrently on the shared model, and the `with` block removes them after each call.
    """

    def __init__(self, model: nn.Module, layer_name: str) -> None:
        self._model = copy.deepcopy(model).eval()
        for parameter in self._model.parameters():
            parameter.requires_grad_(False)  # gradients are needed w.r.t. activations only
        self._layer = self._model.get_submodule(layer_name)
        self._lock = threading.Lock()

    def heatmap(self, model_input: torch.Tensor, class_index: int) -> np.ndarray:
        """Grad-CAM map in [0, 1] at the model's input size for one normalised (1,3,H,W) input."""
        with self._lock, torch.enable_grad(), GradCAM(model=self._model, target_layers=[self._layer]) as cam:
            # A fresh leaf that requires grad: the frozen parameters alone would leave nothing to differentiate.
            leaf = model_input.detach().clone().requires_grad_(True)
            maps = cam(input_tensor=leaf, targets=[ClassifierOutputTarget(class_index)])
        return np.asarray(maps[0], dtype=np.float32)


def display_image(image: Image.Image, max_side: int) -> np.ndarray:
    """The upload as RGB uint8, shrunk (aspect kept) so neither side exceeds `max_side`."""
    width, height = image.size
    scale = min(1.0, max_side / max(width, height))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if size != image.size:
        image = image.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def overlay_png(rgb: np.ndarray, heatmap: np.ndarray, alpha: float = 0.45) -> bytes:
    """The heatmap in JET colours blended over the image, PNG-encoded.

    Tiny images (CIFAKE is 32x32) are enlarged with nearest-neighbour first so the overlay is big enough to see.
    """
    height, width = rgb.shape[:2]
    if max(height, width) < 128:
        factor = int(np.ceil(128 / max(height, width)))
        rgb = cv2.resize(rgb, (width * factor, height * factor), interpolation=cv2.INTER_NEAREST)
        height, width = rgb.shape[:2]
    heat = cv2.resize(heatmap, (width, height), interpolation=cv2.INTER_LINEAR)
    colours = cv2.applyColorMap(np.uint8(np.clip(heat, 0, 1) * 255), cv2.COLORMAP_JET)  # BGR
    blended = cv2.addWeighted(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), 1 - alpha, colours, alpha, 0)
    ok, encoded = cv2.imencode(".png", blended, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return encoded.tobytes()


def png_data_uri(png: bytes) -> str:
    """A data: URI for PNG bytes."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
