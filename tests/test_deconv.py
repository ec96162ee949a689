"""The exact stride-1 forms of LitePose's transposed convs (compile/model/deconv.py)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from compile.model.deconv import DECONV_FORMS, CompiledLitePose, ExactDeconv
from compile.model.litepose import LitePose
from compile.model.weights import fuse_bn, init_random
from compile.model.zoo import DATASETS, MODELS

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("form", DECONV_FORMS)
@pytest.mark.parametrize(("cins", "cout", "h", "w"), [
    ((8,), 5, 7, 9), ((16, 24), 24, 16, 16), ((80, 48), 16, 8, 8), ((3,), 4, 1, 1), ((40, 2), 7, 5, 12)])
def test_exact_deconv_equals_the_sum_of_conv_transposes(form, cins, cout, h, w):
    gen = torch.Generator().manual_seed(sum(cins) + cout + h)
    deconvs = [nn.ConvTranspose2d(c, cout, 4, 2, 1, bias=i == 0) for i, c in enumerate(cins)]
    with torch.no_grad():
        for d in deconvs:
            d.weight.copy_(torch.randn(d.weight.shape, generator=gen))
            if d.bias is not None:
                d.bias.copy_(torch.randn(cout, generator=gen))
    xs = [torch.randn((2, c, h, w), generator=gen) for c in cins]
    exact = ExactDeconv(deconvs, form)
    with torch.no_grad():
        ref = sum(d(x) for d, x in zip(deconvs, xs, strict=True))
        out = exact(*xs)
        out_relu = exact(*xs, relu=True)
    assert out.shape == ref.shape == (2, cout, 2 * h, 2 * w)
    tol = 1e-5 * float(ref.abs().max()) * max(1, sum(cins) // 8)
    assert float((out - ref).abs().max()) <= tol
    assert float((out_relu - ref.relu()).abs().max()) <= tol
    k = 2 if form == "phase" else 3
    assert exact.conv.kernel_size == (k, k) and exact.conv.stride == (1, 1)


def test_other_deconvs_are_refused():
    with pytest.raises(ValueError, match="only ConvTranspose2d"):
        ExactDeconv([nn.ConvTranspose2d(4, 4, 3, 2, 1)])
    with pytest.raises(ValueError, match="unknown deconv form 'x'; valid choices: phase, shuffle"):
        ExactDeconv([nn.ConvTranspose2d(4, 4, 4, 2, 1)], "x")


@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("dataset", list(DATASETS))
def test_every_variant_compiles_to_the_same_function(model, dataset):
    net = LitePose(MODELS[model].arch(), DATASETS[dataset].num_joints)
    init_random(net, seed=3, calib_size=(64, 64))
    net.eval()
    compiled = CompiledLitePose(fuse_bn(net), "phase").eval()
    assert not any(isinstance(m, nn.ConvTranspose2d) for m in compiled.modules())
    x = torch.randn((1, 3, 64, 96), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        for ref, out in zip(net(x), compiled(x), strict=True):
            assert out.shape == ref.shape
            assert float((out - ref).abs().max()) <= 1e-4 * max(1.0, float(ref.abs().max()))


@pytest.mark.parametrize(("cins", "cout", "n", "h", "w"), [
    ((8,), 5, 1, 7, 9), ((16, 24), 24, 2, 16, 16), ((3,), 4, 1, 1, 1), ((40, 2), 7, 2, 5, 12)])
def test_the_channels_last_interleave_is_the_same_function(cins, cout, n, h, w):
    gen = torch.Generator().manual_seed(sum(cins) + n)
    exact = ExactDeconv([nn.ConvTranspose2d(c, cout, 4, 2, 1) for c in cins])
    xs = [torch.randn((n, c, h, w), generator=gen) for c in cins]
    with torch.no_grad():
        nchw = exact(*xs, relu=True)
        exact.channels_last = True
        rows = exact(*xs, relu=True)
    assert torch.equal(rows, nchw)  # a gather of the same floats: bit for bit


def test_a_whole_network_with_the_channels_last_interleave_is_the_same_function():
    net = LitePose(MODELS["xs"].arch(), DATASETS["crowdpose"].num_joints)
    init_random(net, seed=4, calib_size=(64, 64))
    compiled = CompiledLitePose(fuse_bn(net.eval()), "phase").eval()
    twin = compiled.with_channels_last()
    assert all(d.channels_last for d in twin.deconvs) and not any(
        d.channels_last for d in compiled.deconvs)  # a copy: the NCHW form is kept
    x = torch.randn((1, 3, 64, 96), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():  # the next convs read other strides: not bit for bit
        for ref, out in zip(compiled(x), twin(x), strict=True):
            assert float((out - ref).abs().max()) <= 1e-5 * max(1.0, float(ref.abs().max()))
    with pytest.raises(ValueError, match="only the phase form"):
        CompiledLitePose(fuse_bn(net.eval()), "shuffle").with_channels_last()
