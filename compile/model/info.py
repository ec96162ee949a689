"""Model statistics: parameters, true MACs and the paper's ptflops-style MACs (spec §2.1)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .deconv import DECONV_FORM, CompiledLitePose
from .litepose import LitePose
from .weights import fuse_bn
from .zoo import Dataset, ModelSpec


@dataclass(frozen=True)
class ModelStats:
    """Counts for one variant at one input size."""

    params: int  # conv weights + BN gamma/beta
    true_macs: int  # conv + deconv multiply-accumulates, deconv per input pixel
    ptflops_macs: int  # the paper's convention: deconv per output pixel, BN 2/elem, ReLU 1/elem
    compiled_macs: int  # what the graph TVM compiles does (exact stride-1 deconvs, compile/model/deconv.py)
    zero_dilated_macs: int  # what TVM's own conv2d_transpose lowering would do (4x per deconv)
    output_shapes: tuple[tuple[int, ...], ...]


def count_params(model: nn.Module) -> int:
    """Trainable parameters: conv weights and BN affine parameters."""
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def model_stats(spec: ModelSpec, dataset: Dataset, size: tuple[int, int]) -> ModelStats:
    """Count parameters and MACs of ``spec`` at input ``size`` = (H, W) with forward hooks."""
    model = LitePose(spec.arch(), dataset.num_joints).eval()
    true = ptf = 0

    def hook(module: nn.Module, inputs, output) -> None:
        nonlocal true, ptf
        x = inputs[0]
        if isinstance(module, nn.ConvTranspose2d):
            k = module.weight[0, 0].numel()
            per_pixel = module.in_channels * module.out_channels * k // module.groups
            true += x[0, 0].numel() * per_pixel
            ptf += output[0, 0].numel() * per_pixel
        elif isinstance(module, nn.Conv2d):
            macs = output[0].numel() * module.weight[0].numel()
            true += macs
            ptf += macs
        elif isinstance(module, nn.BatchNorm2d):
            ptf += 2 * output[0].numel()
        elif isinstance(module, (nn.ReLU, nn.ReLU6)):
            ptf += output[0].numel()

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    outputs = model(torch.zeros(1, 3, *size))
    for h in handles:
        h.remove()
    deconv = sum(x for x in _conv_macs(model, size, nn.ConvTranspose2d))
    compiled = CompiledLitePose(fuse_bn(model), DECONV_FORM).eval()
    return ModelStats(count_params(model), true, ptf, sum(_conv_macs(compiled, size, nn.Conv2d)),
                      true + 3 * deconv, tuple(tuple(o.shape) for o in outputs))


def _conv_macs(model: nn.Module, size: tuple[int, int], kind: type) -> list[int]:
    """Per-call MACs of every ``kind`` module (deconvs counted per input pixel)."""
    macs: list[int] = []

    def hook(module, inputs, output) -> None:
        if type(module) is nn.ConvTranspose2d:
            k = module.weight[0, 0].numel()
            macs.append(inputs[0][0, 0].numel() * module.in_channels * module.out_channels * k)
        else:
            macs.append(output[0].numel() * module.weight[0].numel())

    handles = [m.register_forward_hook(hook) for m in model.modules() if type(m) is kind]
    model(torch.zeros(1, 3, *size))
    for h in handles:
        h.remove()
    return macs
