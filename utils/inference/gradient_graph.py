"""Grad-CAM's backward pass written out as ordinary forward operations, so ONNX Runtime can run it.

Grad-CAM needs the gradient of one logit with respect to the explained layer's output. PyTorch's autograd computes
it, but for EfficientNet-B0 at 32 px the part after the explained layer is ~150 operators on 2x2 and 1x1 maps,
where every operator costs far more in dispatch than in arithmetic: autograd's forward plus backward took several
milliseconds per explanation here, against well under one for ONNX Runtime's whole forward pass.

`GradientGraph` computes the same gradient by hand, layer by layer in reverse, from the rules below (eval mode):
- Conv2d: the gradient of the input is the transposed convolution of the output gradient with the same weights;
- BatchNorm2d: an affine map per channel, so the gradient is scaled by weight / sqrt(running_var + eps);
- SiLU: s * (1 + x * (1 - s)) with s = sigmoid(x); Sigmoid: y * (1 - y);
- SqueezeExcitation (out = s(x) * x): the direct term g * s plus the term through the pooled gate;
- MBConv and ArtifactCNN's ConvStage: the block's gradient plus the skip connection's (stochastic depth is the
  identity in eval mode);
- GELU (exact form): Phi(x) + x * phi(x);
- max-pooling in non-overlapping windows: the gradient goes to the position the forward pass took each maximum
  from (MaxPool's indices, then a scatter), as autograd does;
- global max pooling (`amax`): shared evenly among the positions equal to the maximum, as autograd does; global
  average pooling, flatten, dropout and linear layers.
The result is a plain module of convolutions, transposed convolutions and element-wise operations that exports
to ONNX like any network. A module type outside these rules raises `UnsupportedLayer`, and the caller keeps
autograd for that model.
tests/utils/inference/test_gradient_graph.py checks the gradient against autograd.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.efficientnet import MBConv
from torchvision.ops import SqueezeExcitation, StochasticDepth

from models.artifact_cnn import ConvStage, MaxMeanPool
from utils.inference.explain_graph import PointwiseLinear, SmallDepthwise, rewrite_for_explanation


class UnsupportedLayer(NotImplementedError):
    """The module contains a layer type the hand-written backward pass does not cover."""


_IDENTITY_IN_EVAL = (nn.Identity, nn.Dropout, StochasticDepth)


def _container_children(module: nn.Module) -> list[nn.Module] | None:
    """The sub-modules a container runs (in order), or None when `module` is not a container with a rule here."""
    if isinstance(module, nn.Sequential):
        return list(module.children())
    if isinstance(module, MBConv):
        return [module.block]
    if isinstance(module, ConvStage):
        return [module.expand, module.refine]
    return None


def check_supported(module: nn.Module) -> None:
    """Raise UnsupportedLayer unless every layer in `module` has a rule here."""
    children = _container_children(module)
    if children is not None:
        for child in children:
            check_supported(child)
        return
    if isinstance(module, nn.GELU):
        if module.approximate != "none":
            raise UnsupportedLayer("GELU with the tanh approximation")
        return
    if isinstance(module, nn.MaxPool2d):
        if (module.padding not in (0, (0, 0)) or module.dilation not in (1, (1, 1)) or module.ceil_mode
                or (module.stride or module.kernel_size) != module.kernel_size):
            raise UnsupportedLayer("max-pooling other than non-overlapping windows without padding")
        return
    if isinstance(module, SqueezeExcitation):
        if not (isinstance(module.activation, nn.SiLU) and isinstance(module.scale_activation, nn.Sigmoid)):
            raise UnsupportedLayer("SqueezeExcitation with activations other than SiLU and Sigmoid")
        return
    if isinstance(module, nn.AdaptiveAvgPool2d):
        if module.output_size not in (1, (1, 1)):
            raise UnsupportedLayer("adaptive average pooling to more than 1x1")
        return
    if isinstance(module, nn.Flatten) and module.start_dim != 1:
        raise UnsupportedLayer("Flatten that merges the batch axis")
    supported = (nn.Conv2d, PointwiseLinear, SmallDepthwise, nn.BatchNorm2d, nn.SiLU, nn.Sigmoid, nn.Flatten,
                 nn.Linear, MaxMeanPool) + _IDENTITY_IN_EVAL
    if not isinstance(module, supported):
        raise UnsupportedLayer(f"no backward rule for {type(module).__name__}")


def _bn_scale(norm: nn.BatchNorm2d) -> torch.Tensor:
    scale = torch.rsqrt(norm.running_var + norm.eps)
    return scale if norm.weight is None else scale * norm.weight


def _gelu_derivative(x: torch.Tensor) -> torch.Tensor:
    """d gelu(x)/dx for the exact (erf) GELU: Phi(x) + x * phi(x)."""
    return 0.5 * (1 + torch.erf(x * 0.7071067811865476)) + x * torch.exp(-0.5 * x * x) * 0.3989422804014327


def _silu_derivative(x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """d silu(x)/dx from x and s = sigmoid(x), which the forward pass already computed."""
    return s * (1 + x * (1 - s))


def _conv_input_gradient(conv: nn.Conv2d, grad: torch.Tensor, input_hw: tuple[int, int]) -> torch.Tensor:
    """d(conv(x))/dx applied to `grad`: a transposed convolution, padded back to the input's size."""
    output_padding = []
    for axis in range(2):
        covered = ((grad.shape[2 + axis] - 1) * conv.stride[axis] - 2 * conv.padding[axis]
                   + conv.dilation[axis] * (conv.kernel_size[axis] - 1) + 1)
        output_padding.append(input_hw[axis] - covered)
    return F.conv_transpose2d(grad, conv.weight, None, conv.stride, conv.padding, tuple(output_padding),
                              conv.groups, conv.dilation)


def _pointwise_input_gradient(layer: nn.Module, grad: torch.Tensor) -> torch.Tensor:
    """Input gradient of a 1x1 convolution, in either of its forms (a rewritten one is a matrix product)."""
    if isinstance(layer, PointwiseLinear):
        return torch.matmul(grad.permute(0, 2, 3, 1), layer.weight).permute(0, 3, 1, 2)
    return _conv_input_gradient(layer, grad, tuple(grad.shape[-2:]))


class GradientGraph(nn.Module):
    """(logits, d(selected logit)/d(layer output)) for the part of a model after its Grad-CAM layer.

    `forward(layer_output, target)` takes the layer output (N, C, h, w) and a one-hot (N, classes) mask of the
    logit to explain; the gradient is that of sum(target * logits). Eval-mode semantics throughout.

    The suffix is first rewritten as in utils/inference/explain_graph.py (batch norms folded into convolutions, 1x1
    convolutions as matrix products, depthwise convolutions on tiny maps as per-channel matrices) for layer
    outputs shaped like `example_input`; those forms have cheap transposes, where ONNX Runtime's grouped
    ConvTranspose was the slowest operator of the first version of this graph.
    """

    def __init__(self, suffix: nn.Module, example_input: torch.Tensor) -> None:
        super().__init__()
        check_supported(suffix)
        self.suffix = rewrite_for_explanation(suffix, example_input)
        check_supported(self.suffix)

    def forward(self, layer_output: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tape: list = []
        logits = self._forward(self.suffix, layer_output, tape)
        grad = self._backward(self.suffix, target.to(logits.dtype), tape)
        return logits, grad

    # Each _forward appends what its _backward needs; backward pops in exactly the reverse order.
    def _forward(self, module: nn.Module, x: torch.Tensor, tape: list) -> torch.Tensor:
        if isinstance(module, nn.Sequential):
            for child in module:
                x = self._forward(child, x, tape)
            return x
        if isinstance(module, MBConv):
            y = self._forward(module.block, x, tape)
            return y + x if module.use_res_connect else y
        if isinstance(module, ConvStage):
            x = self._forward(module.expand, x, tape)
            return x + self._forward(module.refine, x, tape)
        if isinstance(module, nn.GELU):
            tape.append(x)
            return F.gelu(x)
        if isinstance(module, nn.MaxPool2d):
            y, indices = F.max_pool2d(x, module.kernel_size, module.stride, return_indices=True)
            tape.append((indices, x))
            return y
        if isinstance(module, MaxMeanPool):
            peak = x.amax(dim=(2, 3), keepdim=True)
            tape.append((x, peak))
            return torch.cat([peak.flatten(1), x.mean(dim=(2, 3))], dim=1)
        if isinstance(module, SqueezeExcitation):
            z1 = self._forward(module.fc1, x.mean(dim=(2, 3), keepdim=True), [])
            s1 = torch.sigmoid(z1)
            gate = torch.sigmoid(self._forward(module.fc2, z1 * s1, []))
            tape.append((x, z1, s1, gate))
            return gate * x
        if isinstance(module, SmallDepthwise):
            tape.append(tuple(x.shape[-2:]))
            if tuple(x.shape[-2:]) != module.input_hw:
                return module(x)
            # out[n, c, p] = sum_q maps[c, p, q] x[n, c, q], as a broadcast product and a sum: ONNX Runtime runs
            # a batched MatMul of hundreds of 4x4 matrices one small GEMM at a time, far slower than this
            n, c = x.shape[:2]
            out = (module.maps * x.reshape(n, c, 1, -1)).sum(dim=-1).reshape(n, c, *module.output_hw)
            return out if module.conv.bias is None else out + module.conv.bias.view(1, -1, 1, 1)
        if isinstance(module, nn.Conv2d):
            tape.append(tuple(x.shape[-2:]))
            return module(x)
        if isinstance(module, PointwiseLinear):  # explicit NCHW<->NHWC permutes: the exporter writes movedim's
            y = F.linear(x.permute(0, 2, 3, 1), module.weight, module.bias)  # negative perm, which ONNX refuses
            return y.permute(0, 3, 1, 2)
        if isinstance(module, nn.BatchNorm2d):
            return module(x)
        if isinstance(module, nn.SiLU):
            s = torch.sigmoid(x)
            tape.append((x, s))
            return x * s
        if isinstance(module, nn.Sigmoid):
            y = torch.sigmoid(x)
            tape.append(y)
            return y
        if isinstance(module, nn.AdaptiveAvgPool2d):
            tape.append(tuple(x.shape[-2:]))
            return x.mean(dim=(2, 3), keepdim=True)
        if isinstance(module, nn.Flatten):
            tape.append(tuple(x.shape[1:]))
            return torch.flatten(x, module.start_dim, module.end_dim)
        if isinstance(module, nn.Linear):
            return module(x)
        return x  # identity in eval mode (check_supported admitted nothing else)

    def _backward(self, module: nn.Module, grad: torch.Tensor, tape: list) -> torch.Tensor:
        if isinstance(module, nn.Sequential):
            for child in reversed(module):
                grad = self._backward(child, grad, tape)
            return grad
        if isinstance(module, MBConv):
            block_grad = self._backward(module.block, grad, tape)
            return block_grad + grad if module.use_res_connect else block_grad
        if isinstance(module, ConvStage):
            grad = grad + self._backward(module.refine, grad, tape)
            return self._backward(module.expand, grad, tape)
        if isinstance(module, nn.GELU):
            return grad * _gelu_derivative(tape.pop())
        if isinstance(module, nn.MaxPool2d):
            indices, x = tape.pop()
            # max_unpool2d, written as a scatter into the flattened input plane (the exporter cannot trace the
            # output size max_unpool2d computes); `indices` index each channel's h*w positions
            flat = torch.zeros_like(x).flatten(2).scatter(2, indices.flatten(2), grad.flatten(2))
            return flat.reshape_as(x)
        if isinstance(module, MaxMeanPool):
            x, peak = tape.pop()
            channels = x.shape[1]
            grad_max, grad_mean = grad[:, :channels, None, None], grad[:, channels:, None, None]
            at_peak = (x == peak).to(x.dtype)
            shared = grad_max * at_peak / at_peak.sum(dim=(2, 3), keepdim=True)
            return shared + grad_mean.expand_as(x) / (x.shape[2] * x.shape[3])
        if isinstance(module, SqueezeExcitation):
            x, z1, s1, gate = tape.pop()
            grad_gate = (grad * x).sum(dim=(2, 3), keepdim=True) * gate * (1 - gate)
            grad_z1 = _pointwise_input_gradient(module.fc2, grad_gate) * _silu_derivative(z1, s1)
            grad_pooled = _pointwise_input_gradient(module.fc1, grad_z1)
            return grad * gate + grad_pooled / (x.shape[2] * x.shape[3])
        if isinstance(module, SmallDepthwise):
            input_hw = tape.pop()
            if input_hw == module.input_hw:  # maps[c] is (output positions x input positions): use its transpose
                n, c = grad.shape[:2]
                # summed over the last axis: ONNX Runtime's ReduceSum took ~40 us a call over the middle axis here
                # and ~6 us over the last (the transposed constant is folded at load)
                flat = (module.maps.transpose(-1, -2) * grad.reshape(n, c, 1, -1)).sum(dim=-1)
                return flat.reshape(n, c, *input_hw)
            return _conv_input_gradient(module.conv, grad, input_hw)
        if isinstance(module, PointwiseLinear):
            return _pointwise_input_gradient(module, grad)
        if isinstance(module, nn.Conv2d):
            return _conv_input_gradient(module, grad, tape.pop())
        if isinstance(module, nn.BatchNorm2d):
            return grad * _bn_scale(module).view(1, -1, 1, 1)
        if isinstance(module, nn.SiLU):
            return grad * _silu_derivative(*tape.pop())
        if isinstance(module, nn.Sigmoid):
            y = tape.pop()
            return grad * y * (1 - y)
        if isinstance(module, nn.AdaptiveAvgPool2d):
            height, width = tape.pop()
            return (grad / (height * width)).expand(-1, -1, height, width)
        if isinstance(module, nn.Flatten):
            return grad.reshape(-1, *tape.pop())
        if isinstance(module, nn.Linear):
            return grad @ module.weight
        return grad
