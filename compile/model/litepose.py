"""The LitePose network in PyTorch, with module names that match the official checkpoints."""

from __future__ import annotations

import torch
from torch import nn


def make_divisible(v: float, divisor: int = 8) -> int:
    """Round ``v`` to a multiple of ``divisor`` (never below 90 % of ``v``), as LitePose does."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def convbnrelu(inp: int, oup: int, k: int, s: int, groups: int = 1) -> nn.Sequential:
    """Conv (no bias) + BN + ReLU6 with "same" padding."""
    return nn.Sequential(
        nn.Conv2d(inp, oup, k, s, k // 2, groups=groups, bias=False),
        nn.BatchNorm2d(oup),
        nn.ReLU6(inplace=False),
    )


class InvBottleneck(nn.Module):
    """MBConv: 1x1 expand + ReLU6, kxk depthwise + ReLU6, linear 1x1 project, residual."""

    def __init__(self, cin: int, cout: int, stride: int, ker: int = 7, exp: int = 6):
        super().__init__()
        hid = make_divisible(round(cin * exp), 8)
        self.inv = convbnrelu(cin, hid, 1, 1)
        self.depth_conv = convbnrelu(hid, hid, ker, stride, groups=hid)
        self.point_conv = nn.Sequential(nn.Conv2d(hid, cout, 1, 1, 0, bias=False), nn.BatchNorm2d(cout))
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.point_conv(self.depth_conv(self.inv(x)))
        return out + x if self.residual else out


class SepConv2d(nn.Module):
    """Head conv: kxk depthwise + BN + ReLU, then a bias-free 1x1 (no BN, no activation)."""

    def __init__(self, inp: int, oup: int, ker: int = 5):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(inp, inp, ker, 1, ker // 2, groups=inp, bias=False),
            nn.BatchNorm2d(inp),
            nn.ReLU(inplace=False),
            nn.Conv2d(inp, oup, 1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def _deconv(cin: int, cout: int) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(cin, cout, 4, 2, 1, output_padding=0, bias=False)


class LitePose(nn.Module):
    """Single-branch LitePose with the Fusion Deconv Head (spec §1).

    Parameters
    ----------
    arch : dict
        A released architecture (``mobile_configs/search-*.json``).
    num_joints : int
        14 (CrowdPose) or 17 (COCO).

    ``forward(x)`` takes ``(N, 3, H, W)`` (H, W multiples of 16) and returns the tuple
    ``(out0, out1)``: ``out0`` is ``(N, 2J, H/4, W/4)`` (J heatmaps then J tags) and ``out1``
    is ``(N, J, H/2, W/2)`` (heatmaps).
    """

    def __init__(self, arch: dict, num_joints: int = 14):
        super().__init__()
        c0 = arch["input_channel"]
        self.first = nn.Sequential(
            convbnrelu(3, 32, 3, 2),
            convbnrelu(32, 32, 3, 1, groups=32),
            nn.Conv2d(32, c0, 1, 1, 0, bias=False),
            nn.BatchNorm2d(c0),
        )
        channels = [c0]
        stages = []
        cin = c0
        for setting in arch["backbone_setting"]:
            blocks = []
            for b, (t, k) in enumerate(setting["block_setting"][: setting["num_blocks"]]):
                stride = setting["stride"] if b == 0 else 1
                blocks.append(InvBottleneck(cin, setting["channel"], stride, ker=k, exp=t))
                cin = setting["channel"]
            stages.append(nn.Sequential(*blocks))
            channels.append(cin)
        self.stage = nn.ModuleList(stages)
        f = arch["deconv_setting"]
        c = channels  # [C0, C1, C2, C3, C4]
        self.deconv_refined = nn.ModuleList([_deconv(c[4], f[0]), _deconv(f[0], f[1]), _deconv(f[1], f[2])])
        self.deconv_raw = nn.ModuleList([_deconv(c[3], f[0]), _deconv(c[2], f[1]), _deconv(c[1], f[2])])
        self.deconv_bnrelu = nn.ModuleList(
            [nn.Sequential(nn.BatchNorm2d(n), nn.ReLU(inplace=False)) for n in f]
        )
        j = num_joints
        self.final_refined = nn.ModuleList([SepConv2d(f[1], 2 * j), SepConv2d(f[2], j)])
        self.final_raw = nn.ModuleList([SepConv2d(c[1], 2 * j), SepConv2d(c[0], j)])
        self.num_joints = j

    def fuse_level(self, i: int, ref: torch.Tensor, raw: torch.Tensor) -> torch.Tensor:
        """Fusion level ``i`` of the head: both deconvs summed, then BN + ReLU (2x resolution)."""
        return self.deconv_bnrelu[i](self.deconv_refined[i](ref) + self.deconv_raw[i](raw))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x_list = [self.first(x)]
        for stage in self.stage:
            x_list.append(stage(x_list[-1]))
        ref, raw = x_list[-1], x_list[-2]
        outs = []
        for i in range(3):
            ref = self.fuse_level(i, ref, raw)
            raw = x_list[-i - 3]
            if i >= 1:
                outs.append(self.final_refined[i - 1](ref) + self.final_raw[i - 1](raw))
        return outs[0], outs[1]
