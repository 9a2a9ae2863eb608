"""Plain forward passes for serving: ONNX Runtime when it is installed, PyTorch eager otherwise.

Both runtimes take a float32 NCHW batch, already normalised by `utils.inference.preprocessing.normalize_batch`, and return
two arrays: the logits (N, 2) and the output of the model's Grad-CAM layer (N, C, h, w), which the explainer
differentiates without running the model again. On this project's 2-core CPU, ONNX Runtime ran EfficientNet-B0 at
batch 1 about 6x faster and the custom CNN about 2x faster than PyTorch eager (bench/profile_request.py); the
two agree to float32 rounding (tests/utils/inference/test_runtime.py).

The ONNX graph is exported from the checkpoint's own weights when the model loads, in memory, so there is no
second weights file that could drift from the checkpoint.
"""
from __future__ import annotations

import io
import logging
import os
import threading
import warnings
from typing import Protocol

import numpy as np
import torch
from torch import nn

from models import GradCamSplit
from utils.inference.gradient_graph import GradientGraph

log = logging.getLogger(__name__)

RUNTIMES = ("onnxruntime", "torch")
# torch.onnx.export keeps its state in module globals: two exports at once (a detector loading in the background
# while another loads in the foreground) fail with "GLOBALS.in_onnx_export must be False". One at a time.
_EXPORT_LOCK = threading.Lock()


class ForwardPass(Protocol):
    """Callable returning (logits, Grad-CAM layer output) as float32 arrays for a normalised NCHW batch."""

    name: str

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


class _LogitsAndLayerOutput(nn.Module):
    """The whole model, returning the Grad-CAM layer's output beside the logits."""

    def __init__(self, split: GradCamSplit) -> None:
        super().__init__()
        self.prefix, self.suffix = split.prefix, split.suffix

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        layer_output = self.prefix(x)
        return self.suffix(layer_output), layer_output


class TorchForward:
    """PyTorch eager, in inference mode, channels-last (faster for these convolutions on CPU)."""

    name = "torch"

    def __init__(self, split: GradCamSplit) -> None:
        self._model = _LogitsAndLayerOutput(split).eval().to(memory_format=torch.channels_last)

    @torch.inference_mode()
    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = torch.from_numpy(batch).contiguous(memory_format=torch.channels_last)
        logits, layer_output = self._model(x)
        return logits.float().numpy(), layer_output.float().contiguous().numpy()


class OnnxForward:
    """ONNX Runtime on the CPU, with the graph exported from the PyTorch model at load time."""

    name = "onnxruntime"

    def __init__(self, split: GradCamSplit, input_size: int, threads: int) -> None:
        import onnxruntime  # imported here: the torch runtime works without it

        graph = io.BytesIO()
        wrapper = _LogitsAndLayerOutput(split).eval()
        example = torch.zeros(1, 3, input_size, input_size)
        with _EXPORT_LOCK, warnings.catch_warnings(), torch.no_grad():
            # The TorchScript-based exporter is deprecated in favour of torch.export, which needs onnxscript and
            # takes several times longer at start-up; it still exports these plain CNNs exactly.
            warnings.simplefilter("ignore")
            torch.onnx.export(wrapper, (example,), graph, dynamo=False, opset_version=17,
                              input_names=["pixels"], output_names=["logits", "layer_output"],
                              dynamic_axes={"pixels": {0: "batch"}, "logits": {0: "batch"},
                                            "layer_output": {0: "batch"}})
        self._session = _cpu_session(graph.getvalue(), threads)

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logits, layer_output = self._session.run(None, {"pixels": np.ascontiguousarray(batch, dtype=np.float32)})
        return logits, layer_output


def _cpu_session(graph: bytes, threads: int):
    """An ONNX Runtime CPU session with all graph optimisations and `threads` intra-op threads."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only; its warnings about unused initialisers are noise here
    return onnxruntime.InferenceSession(graph, options, providers=["CPUExecutionProvider"])


class OnnxGradient:
    """Grad-CAM's gradient for one image in ONNX Runtime: d(logit of `class_index`)/d(Grad-CAM layer output).

    The graph is utils/inference/gradient_graph.py's hand-written backward pass, exported at load for the one shape a
    served model's layer output has (batch 1), so every shape in it is a constant. Raises UnsupportedLayer for a
    model whose layers it does not cover, and ImportError without ONNX Runtime.
    """

    def __init__(self, suffix: nn.Module, example_layer_output: torch.Tensor, num_classes: int, threads: int,
                 batch: int = 1) -> None:
        import onnxruntime  # noqa: F401  (fail early, before the export, when it is missing)

        # `batch` > 1 serves a photo's tiles in one call (padded up to it): in eval mode no layer mixes the rows of
        # a batch, so each row's gradient is the one it would have alone
        example = example_layer_output[:1].expand(batch, *example_layer_output.shape[1:]).contiguous()
        gradient_graph = GradientGraph(suffix, example)
        graph = io.BytesIO()
        target = torch.zeros(batch, num_classes)
        with _EXPORT_LOCK, warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # as in OnnxForward
            torch.onnx.export(gradient_graph, (example, target), graph, dynamo=False,
                              opset_version=17, input_names=["layer_output", "target"],
                              output_names=["logits", "gradient"])
        self._session = _cpu_session(graph.getvalue(), threads)
        self._num_classes = num_classes
        self.batch = batch

    def __call__(self, layer_output: np.ndarray, class_index: int) -> np.ndarray:
        if len(layer_output) != self.batch:
            raise ValueError(f"this gradient graph takes batches of {self.batch}, got {len(layer_output)}")
        target = np.zeros((self.batch, self._num_classes), dtype=np.float32)
        target[:, class_index] = 1.0
        _, gradient = self._session.run(None, {"layer_output": np.ascontiguousarray(layer_output, dtype=np.float32),
                                               "target": target})
        return gradient


def build_forward(split: GradCamSplit, input_size: int, runtime: str = "onnxruntime",
                  threads: int | None = None) -> ForwardPass:
    """The forward pass for one model. "onnxruntime" falls back to PyTorch, with a warning, if it cannot be used."""
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}; choose one of {RUNTIMES}")
    if runtime == "onnxruntime":
        try:
            return OnnxForward(split, input_size, threads or os.cpu_count() or 1)
        except ImportError as exc:
            log.warning("ONNX Runtime is unavailable (%s); using PyTorch for the forward passes", exc)
        except Exception:  # an export or session failure must not take the service down; PyTorch still works
            log.exception("ONNX export failed; using PyTorch for the forward passes")
    return TorchForward(split)
