"""Exact stride-1 forms of LitePose's stride-2 transposed convs, and the network that uses them.

TVM legalizes ``conv2d_transpose`` as a dense conv over the zero-dilated input: 4x the true
MACs. A ``ConvTranspose2d(k=4, s=2, p=1)`` is exactly

* ``phase``: one 2x2 conv (padding 1) with 4*Cout outputs, one group per output phase
  ``(a, b)``, each cropped at offset ``(a, b)`` and interleaved (depth-to-space): the true MACs
  times ``(H+1)(W+1)/(HW)``;
* ``shuffle``: one 3x3 conv (padding 1) with 4*Cout outputs, a quarter of its taps zero, then
  ``pixel_shuffle(2)``: 2.25x the true MACs.

Derivation (one axis): output ``o = 2m + a`` receives ``x[i] * w[k]`` for ``o = 2i + k - 1``,
i.e. ``a = 0``: ``x[m] w[1] + x[m-1] w[3]``; ``a = 1``: ``x[m] w[2] + x[m+1] w[0]``.

The two deconvs of a fusion level read tensors of the same resolution and are summed, so they
are one deconv over the concatenated inputs (weights stacked along input channels, biases added).
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .litepose import LitePose

DECONV_FORMS = ("phase", "shuffle")
# The form the kit compiles. Measured on the host after tuning both forms: docs/design/passes.md.
DECONV_FORM = "phase"


def _check(deconv: nn.ConvTranspose2d) -> None:
    ok = (deconv.kernel_size == (4, 4) and deconv.stride == (2, 2) and deconv.padding == (1, 1)
          and deconv.output_padding == (0, 0) and deconv.groups == 1 and deconv.dilation == (1, 1))
    if not ok:
        raise ValueError(f"only ConvTranspose2d(k=4, s=2, p=1, groups=1) has an exact stride-1 form; "
                         f"got {deconv}")


def phase_rows(n: int, h: int, w: int) -> np.ndarray:
    """The phase interleave as a gather of channel rows: index ``(b, 2m+a, 2k+e)`` of the
    output (row-major, ``(N, 2H, 2W)``) reads row ``((b(H+1) + m+a)(W+1) + k+e) 4 + 2a+e`` of
    the phase conv's channels-last output seen as ``(N (H+1) (W+1) 4, Cout)`` rows.

    Returns an int64 array of shape ``(N * 2H * 2W,)``.
    """
    b, i, j = np.meshgrid(np.arange(n), np.arange(2 * h), np.arange(2 * w), indexing="ij")
    a, e = i % 2, j % 2
    return ((((b * (h + 1) + i // 2 + a) * (w + 1) + j // 2 + e) * 4 + 2 * a + e)
            .reshape(-1).astype(np.int64))


class ExactDeconv(nn.Module):
    """The sum of k4/s2/p1 transposed convs over inputs of one resolution, as a stride-1 conv.

    ``forward(*xs)`` takes one ``(N, Cin_i, H, W)`` tensor per source deconv and returns
    ``(N, Cout, 2H, 2W)`` = ``sum_i deconv_i(x_i)``.
    """

    def __init__(self, deconvs: list[nn.ConvTranspose2d], form: str = "phase"):
        super().__init__()
        if form not in DECONV_FORMS:
            raise ValueError(f"unknown deconv form {form!r}; valid choices: {', '.join(DECONV_FORMS)}")
        for d in deconvs:
            _check(d)
        with torch.no_grad():
            wt = torch.cat([d.weight for d in deconvs], dim=0)  # (Cin, Cout, 4, 4)
            bias = sum(d.bias if d.bias is not None else torch.zeros(d.out_channels) for d in deconvs)
        cin, cout = wt.shape[:2]
        self.form, self.cout = form, cout
        self.channels_last = False  # the phase interleave as a row gather (see forward)
        k = 2 if form == "phase" else 3
        w = wt.new_zeros((2, 2, cout, cin, k, k))  # phase (a, b), out, in, tap
        for a in range(2):
            for b in range(2):
                for dy in range(2):
                    for dx in range(2):
                        ty, tx = (dy, dx) if form == "phase" else (a + dy, b + dx)
                        w[a, b, :, :, ty, tx] = wt[:, :, 3 - a - 2 * dy, 3 - b - 2 * dx].T
        if form == "shuffle":  # pixel_shuffle reads channel c*4 + a*2 + b
            w = w.permute(2, 0, 1, 3, 4, 5)
        self.conv = nn.Conv2d(cin, 4 * cout, k, 1, 1, bias=True)
        with torch.no_grad():
            self.conv.weight.copy_(w.reshape(4 * cout, cin, k, k))
            self.conv.bias.copy_(bias.repeat(4) if form == "phase" else bias.repeat_interleave(4))

    def forward(self, *xs: torch.Tensor, relu: bool = False) -> torch.Tensor:
        x = xs[0] if len(xs) == 1 else torch.cat(xs, dim=1)
        y = self.conv(x)
        if relu:  # commutes with the interleave; applied here it fuses into the conv
            y = F.relu(y)
        if self.form == "shuffle":
            return F.pixel_shuffle(y, 2)
        n, _, h, w = (int(d) for d in x.shape)  # ints under ONNX tracing too
        c = self.cout
        if self.channels_last:
            rows = y.permute(0, 2, 3, 1).reshape(-1, c)
            out = rows.index_select(0, torch.from_numpy(phase_rows(n, h, w)))
            return out.reshape(n, 2 * h, 2 * w, c).permute(0, 3, 1, 2)
        phases = [y[:, (2 * a + b) * c:(2 * a + b + 1) * c, a:a + h, b:b + w]
                  for a in range(2) for b in range(2)]
        out = torch.stack(phases, dim=2).reshape(n, c, 2, 2, h, w)  # (n, c, a, b, h, w)
        return out.permute(0, 1, 4, 2, 5, 3).reshape(n, c, 2 * h, 2 * w)

    def macs(self, h: int, w: int) -> int:
        """Multiply-accumulates of one call on ``(H, W)`` inputs (what the compiled graph does)."""
        k = self.conv.kernel_size[0]
        oh, ow = (h + 1, w + 1) if self.form == "phase" else (h, w)
        return self.conv.in_channels * self.conv.out_channels * k * k * oh * ow


class CompiledLitePose(LitePose):
    """A BN-folded LitePose whose fusion head runs on :class:`ExactDeconv`: what TVM compiles.

    Same inputs, outputs and forward as :class:`compile.model.litepose.LitePose`; only
    ``fuse_level`` differs.
    """

    def __init__(self, fused: LitePose, form: str = "phase"):
        nn.Module.__init__(self)
        for bnrelu in fused.deconv_bnrelu:
            if not isinstance(bnrelu[0], nn.Identity):
                raise ValueError("CompiledLitePose needs the BN-folded network "
                                 "(compile.model.weights.fuse_bn)")
        fused = copy.deepcopy(fused)
        self.first, self.stage = fused.first, fused.stage
        self.final_refined, self.final_raw = fused.final_refined, fused.final_raw
        self.num_joints = fused.num_joints
        self.deconvs = nn.ModuleList([
            ExactDeconv([fused.deconv_refined[i], fused.deconv_raw[i]], form) for i in range(3)])

    def with_channels_last(self) -> CompiledLitePose:
        """A copy whose phase interleave is written channels-last, a gather of contiguous
        ``Cout``-float rows between two reshapes (:func:`phase_rows`): the same outputs; what
        CPU targets import, where the convs run in NHWC and
        :mod:`compile.passes.gather` turns each gather into one scheduled kernel (the NCHW
        form's crops, stack and permute send each level through NCHW and back)."""
        if self.deconvs[0].form != "phase":
            raise ValueError(f"only the phase form has a channels-last interleave, not "
                             f"{self.deconvs[0].form!r}")
        twin = copy.deepcopy(self)
        for deconv in twin.deconvs:
            deconv.channels_last = True
        return twin

    def fuse_level(self, i: int, ref: torch.Tensor, raw: torch.Tensor) -> torch.Tensor:
        return self.deconvs[i](ref, raw, relu=True)  # BN is folded; ReLU fuses into the conv
