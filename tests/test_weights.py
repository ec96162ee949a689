"""Weights: strict official-checkpoint loading, seeded random weights, BN folding."""

from __future__ import annotations

import pytest
import torch

from compile.model.litepose import LitePose
from compile.model.weights import fuse_bn, init_random, load_checkpoint, state_digest
from compile.model.zoo import MODELS

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def xs_random():
    net = LitePose(MODELS["xs"].arch(), 14)
    init_random(net, seed=3)
    return net.eval()


@pytest.mark.parametrize("wrap", ["bare", "module.", "1.", "state_dict"])
def test_strict_load_official_keys(tmp_path, xs_random, wrap):
    sd = xs_random.state_dict()
    if wrap in ("module.", "1."):
        sd = {wrap + k: v for k, v in sd.items()}
    elif wrap == "state_dict":
        sd = {"epoch": 3, "state_dict": {"module." + k: v for k, v in sd.items()}}
    path = tmp_path / "ckpt.pth.tar"
    torch.save(sd, path)
    fresh = LitePose(MODELS["xs"].arch(), 14)
    info = load_checkpoint(fresh, path)
    assert info.source == "checkpoint" and info.sha256 == state_digest(xs_random)
    for (k, a), b in zip(xs_random.state_dict().items(), fresh.state_dict().values(), strict=True):
        assert torch.equal(a, b), k


def test_load_ignores_num_batches_tracked(tmp_path, xs_random):
    sd = {k: v for k, v in xs_random.state_dict().items() if not k.endswith("num_batches_tracked")}
    assert len(sd) < len(xs_random.state_dict())  # the counters are really left out
    torch.save(sd, tmp_path / "c.pth")
    fresh = LitePose(MODELS["xs"].arch(), 14)
    info = load_checkpoint(fresh, tmp_path / "c.pth")
    assert info.source == "checkpoint"
    loaded = fresh.state_dict()
    for k, v in sd.items():  # every tensor the checkpoint holds arrived
        assert torch.equal(loaded[k], v), k


class _NotATensor:
    pass


@pytest.mark.parametrize("content", ["corrupt", "truncated", "pickled object"])
def test_an_unreadable_checkpoint_never_suggests_unsafe_loading(tmp_path, xs_random, content):
    path = tmp_path / "c.pth"
    if content == "corrupt":
        path.write_bytes(b"not a checkpoint")
    else:
        torch.save(xs_random.state_dict() if content == "truncated" else
                   {"state_dict": xs_random.state_dict(), "extra": _NotATensor()}, path)
        if content == "truncated":
            path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(ValueError, match="is not a readable state_dict") as info:
        load_checkpoint(LitePose(MODELS["xs"].arch(), 14), path)
    assert "weights_only=False" not in str(info.value) and info.value.__cause__ is None


def test_bad_checkpoint_lists_every_problem(tmp_path, xs_random):
    sd = dict(xs_random.state_dict())
    del sd["first.0.0.weight"], sd["stage.3.9.inv.1.bias"]
    sd["head.extra.weight"] = torch.zeros(3)
    sd["deconv_raw.0.weight"] = torch.zeros(48, 17, 4, 4)
    torch.save(sd, tmp_path / "bad.pth")
    with pytest.raises(ValueError) as err:
        load_checkpoint(LitePose(MODELS["xs"].arch(), 14), tmp_path / "bad.pth")
    text = str(err.value)
    for needle in ("missing keys (2)", "first.0.0.weight", "stage.3.9.inv.1.bias",
                   "unexpected keys (1): head.extra.weight", "mis-shaped keys (1)",
                   "deconv_raw.0.weight: checkpoint (48, 17, 4, 4) vs model (48, 16, 4, 4)"):
        assert needle in text


def test_a_checkpoint_with_non_tensor_values_is_named(tmp_path, xs_random):
    sd = {**xs_random.state_dict(), "epoch": 3, "arch": "xs"}  # a training script's extras
    torch.save(sd, tmp_path / "extras.pth")
    with pytest.raises(ValueError, match=r"2 value\(s\) are not tensors: arch \(str\), epoch \(int\)"):
        load_checkpoint(LitePose(MODELS["xs"].arch(), 14), tmp_path / "extras.pth")


def test_coco_checkpoint_does_not_load_into_crowdpose(tmp_path):
    coco = LitePose(MODELS["xs"].arch(), 17)
    torch.save(coco.state_dict(), tmp_path / "coco.pth")
    with pytest.raises(ValueError, match=r"final_raw.0.conv.3.weight: checkpoint \(34, 16, 1, 1\)"):
        load_checkpoint(LitePose(MODELS["xs"].arch(), 14), tmp_path / "coco.pth")


def test_a_missing_checkpoint(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_checkpoint(LitePose(MODELS["xs"].arch(), 14), tmp_path / "missing.pth")


def test_random_weights_are_seeded_and_realistic(xs_random):
    other = LitePose(MODELS["xs"].arch(), 14)
    assert init_random(other, seed=3).sha256 == state_digest(xs_random)
    assert init_random(LitePose(MODELS["xs"].arch(), 14), seed=4).sha256 != state_digest(xs_random)
    bn = xs_random.stage[2][3].inv[1]
    assert not torch.allclose(bn.running_var, torch.ones_like(bn.running_var))
    assert bn.running_mean.abs().max() > 0.05
    with torch.no_grad():
        outs = xs_random(torch.randn(1, 3, 256, 256, generator=torch.Generator().manual_seed(1)))
    for out in outs:  # like a trained net: O(1), neither vanishing nor exploding
        assert 0.2 < out.std().item() < 5 and out.abs().max().item() < 50


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_random_weights_do_not_depend_on_the_thread_count(xs_random, threads):
    """The build and deploy's reference are other processes, maybe other machines: a seed must
    give the same bytes at any ``torch.get_num_threads()`` (a float32 calibration pass did not)."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        info = init_random(LitePose(MODELS["xs"].arch(), 14), seed=3)
        assert torch.get_num_threads() == threads  # the calibration restores the caller's pool
    finally:
        torch.set_num_threads(before)
    assert info.sha256 == state_digest(xs_random)
    assert all(v.dtype in (torch.float32, torch.int64) for v in xs_random.state_dict().values())


def test_fuse_bn_preserves_the_function(xs_random):
    fused = fuse_bn(xs_random)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    x = torch.randn(1, 3, 128, 192, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        for a, b in zip(xs_random(x), fused(x), strict=True):
            assert (a - b).abs().max().item() <= 1e-4 * max(1.0, a.abs().max().item())
