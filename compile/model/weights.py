"""Weights: strict loading of official LitePose checkpoints, seeded random weights, BN folding."""

from __future__ import annotations

import copy
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

logger = logging.getLogger(__name__)

RANDOM_WEIGHTS_WARNING = (
    "RANDOM WEIGHTS: no checkpoint given, the network has seeded random weights; "
    "its detections are meaningless (official LitePose checkpoints are no longer downloadable)"
)


@dataclass(frozen=True)
class WeightsInfo:
    """Where a model's weights came from, recorded in every artifact."""

    source: str  # "checkpoint" or "random"
    sha256: str  # digest of the state_dict tensors, in registration order
    path: str | None = None
    seed: int | None = None

    def describe(self) -> str:
        if self.source == "random":
            return f"seeded random weights (seed {self.seed}, sha256 {self.sha256[:12]})"
        return f"checkpoint {self.path} (sha256 {self.sha256[:12]})"


def state_digest(model: nn.Module) -> str:
    """SHA-256 over every state_dict tensor's name, shape and bytes, in registration order."""
    h = hashlib.sha256()
    for key, value in model.state_dict().items():
        h.update(key.encode())
        h.update(str(tuple(value.shape)).encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _strip(key: str) -> str:
    for prefix in ("module.", "1."):
        if key.startswith(prefix):
            key = key[len(prefix):]
    return key


def load_checkpoint(model: nn.Module, path: str | Path) -> WeightsInfo:
    """Load an official LitePose checkpoint into ``model`` strictly.

    Accepts a bare state_dict or a dict holding one under ``state_dict``/``model``; strips
    ``module.`` and a leading ``1.`` from keys; ignores ``num_batches_tracked``. Any missing,
    unexpected or mis-shaped key raises ``ValueError`` listing them all.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint {str(path)!r} does not exist or is not a file")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch's text advises weights_only=False: the unsafe thing to do
        raise ValueError(
            f"checkpoint {str(path)!r} is not a readable state_dict ({type(err).__name__}): a "
            "corrupt or truncated file, or one that pickles Python objects besides tensors, which "
            "the kit never unpickles; save the weights with torch.save(model.state_dict(), path)"
        ) from None
    if isinstance(raw, dict) and isinstance(raw.get("state_dict"), dict):
        raw = raw["state_dict"]
    elif isinstance(raw, dict) and isinstance(raw.get("model"), dict):
        raw = raw["model"]
    if not isinstance(raw, dict):
        raise ValueError(f"checkpoint {str(path)!r} holds a {type(raw).__name__}, not a state_dict")
    given = {_strip(str(k)): v for k, v in raw.items() if not str(k).endswith("num_batches_tracked")}
    foreign = sorted(f"{k} ({type(v).__name__})" for k, v in given.items()
                     if not isinstance(v, torch.Tensor))
    if foreign:
        raise ValueError(f"checkpoint {str(path)!r} is not a state_dict of tensors: "
                         f"{len(foreign)} value(s) are not tensors: " + ", ".join(foreign[:8])
                         + (", ..." if len(foreign) > 8 else ""))
    own = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    missing = sorted(set(own) - set(given))
    extra = sorted(set(given) - set(own))
    shaped = sorted(
        f"{k}: checkpoint {tuple(given[k].shape)} vs model {tuple(own[k].shape)}"
        for k in set(own) & set(given)
        if tuple(given[k].shape) != tuple(own[k].shape)
    )
    if missing or extra or shaped:
        parts = [f"checkpoint {str(path)!r} does not fit this model:"]
        for label, items in (("missing keys", missing), ("unexpected keys", extra),
                             ("mis-shaped keys", shaped)):
            if items:
                parts.append(f"  {label} ({len(items)}): " + ", ".join(items))
        raise ValueError("\n".join(parts))
    full = dict(model.state_dict())
    full.update(given)
    model.load_state_dict(full, strict=True)
    return WeightsInfo("checkpoint", state_digest(model), path=str(path.resolve()))


def _calibrate(model: nn.Module, images: torch.Tensor) -> None:
    """One training-mode pass over ``images`` (N, 3, H, W) that sets every BN's running statistics.

    The pass runs in float64 on one thread and the statistics are rounded to float32 after it:
    a float32 pass sums in an order that depends on the thread count and the CPU's kernels, so
    the same seed would give other bytes (and another digest) on another machine, or in a
    process with another ``torch.get_num_threads()``.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model.double().train()
        model(images.double())
    finally:
        model.float().eval()
        torch.set_num_threads(threads)


@torch.no_grad()
def init_random(model: nn.Module, seed: int = 0, calib_size: tuple[int, int] = (128, 128)) -> WeightsInfo:
    """Seeded random weights whose activations look like a trained net's (O(1) outputs).

    Convs get fan-in scaled normal weights; BN affine parameters are drawn around (1, 0) and
    the running statistics are calibrated on a seeded random image batch, so every BN output is
    roughly standardised and the running statistics are non-trivial.
    """
    gen = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            w = module.weight
            fan_in = w[0].numel() if isinstance(module, nn.Conv2d) else w.shape[0] * w[0, 0].numel()
            w.copy_(torch.randn(w.shape, generator=gen) / fan_in**0.5)
        elif isinstance(module, nn.BatchNorm2d):
            module.weight.copy_(torch.rand(module.weight.shape, generator=gen) * 0.6 + 0.5)
            module.bias.copy_(torch.randn(module.bias.shape, generator=gen) * 0.1)
            module.reset_running_stats()
            module.momentum = None  # cumulative average over the calibration pass
    images = torch.randn((2, 3, *calib_size), generator=gen)
    _calibrate(model, images)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.momentum = 0.1
            module.num_batches_tracked.zero_()
    return WeightsInfo("random", state_digest(model), seed=seed)


@torch.no_grad()
def fuse_bn(model: nn.Module) -> nn.Module:
    """A deployment copy with every BatchNorm folded into the conv or deconv before it (spec §5).

    The result computes the same function as ``model.eval()`` (to float32 rounding) with biased
    convs and no BN; the two deconvs of a fusion level share the BN scale and the refined one
    carries the shift.
    """
    fused = copy.deepcopy(model).eval()

    def fold(conv: nn.Module, bn: nn.BatchNorm2d, dim: int, shift: bool) -> None:
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        shape = [1] * conv.weight.dim()
        shape[dim] = -1
        conv.weight.mul_(scale.reshape(shape))
        bias = bn.bias - bn.running_mean * scale if shift else torch.zeros_like(scale)
        conv.bias = nn.Parameter(bias.clone())

    def fold_seq(seq: nn.Sequential, conv_i: int, bn_i: int) -> None:
        fold(seq[conv_i], seq[bn_i], 0, True)
        seq[bn_i] = nn.Identity()

    for name in ("0", "1"):
        fold_seq(fused.first[int(name)], 0, 1)
    fold(fused.first[2], fused.first[3], 0, True)
    fused.first[3] = nn.Identity()
    for stage in fused.stage:
        for block in stage:
            for seq in (block.inv, block.depth_conv, block.point_conv):
                fold_seq(seq, 0, 1)
    for i, bnrelu in enumerate(fused.deconv_bnrelu):
        fold(fused.deconv_refined[i], bnrelu[0], 1, True)
        fold(fused.deconv_raw[i], bnrelu[0], 1, False)
        bnrelu[0] = nn.Identity()
    for head in (*fused.final_refined, *fused.final_raw):
        fold_seq(head.conv, 0, 1)
    return fused
