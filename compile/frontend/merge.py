"""Decode-ready maps in the compiled graph: the heads' merge (spec §3.3) as Relax functions.

LitePose's test pipeline turns the two network outputs into grouping input with dense, regular
work: bilinear (half-pixel) upsampling of the H/4 head to H/2, the average of the two heads,
with flip test the mirrored pass mirrored back and its joints permuted, and the projection to
the input size. On the runtime's CPU that was ~10 ms a frame of numpy and OpenCV; here it is
compiled, fused and tuned with the network, and on a Mali board it runs on the GPU.

Each artifact carries one function per (flip, fast) pair, fed by the network's outputs (one
pass, or two with flip test: the image and its mirror). They take the outputs as they leave
``main``, so the network itself keeps one batch-1 graph whose tuning records serve both passes;
running the mirrored pass inside one function at batch 2 would change every workload (a new
tuning run per model and target) for no less work. ``main`` stays the bare network.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from runtime.meta import MergeSpec


@dataclass(frozen=True)
class MergeVariant:
    """One merge function: its name and test-time options."""

    name: str
    flip: bool
    fast: bool  # group at H/2 (LitePose's Jetson demo) instead of the input size


VARIANTS = (MergeVariant("merge", False, False), MergeVariant("merge_fast", False, True),
            MergeVariant("merge_flip", True, False), MergeVariant("merge_flip_fast", True, True))


def merge_spec(variant: MergeVariant, num_joints: int, size: tuple[int, int]) -> MergeSpec:
    """What the function returns, as the artifact metadata records it."""
    h, w = size
    mh, mw = (h // 2, w // 2) if variant.fast else (h, w)
    return MergeSpec(function=variant.name, flip=variant.flip, fast=variant.fast,
                     inputs=4 if variant.flip else 2, heatmaps=(num_joints, mh, mw),
                     tags=(num_joints, mh, mw, 2 if variant.flip else 1))


OPAQUE = 8  # TVM's kOpaque op pattern: FuseOps leaves such a kernel alone


def _clamp(i, n):
    from tvm import te

    return te.max(te.min(i, n - 1), 0)


def pad_edge_te(x):
    """(N, C, h, w) -> (N, C, h + 2, w + 2), the border rows and columns repeated."""
    from tvm import te

    n, c, h, w = x.shape
    return te.compute((n, c, h + 2, w + 2),
                      lambda b, k, y, xx: x[b, k, _clamp(y - 1, h), _clamp(xx - 1, w)],
                      name="pad_edge")


def mirror_te(x, perm: tuple[int, ...]):
    """(N, C, h, w) -> the same, mirrored along W with channel ``k`` taken from ``perm[k]``.

    One kernel with the permutation as constants (a select chain on the channel, invariant in
    the row loop): a gather by an index tensor cannot be measured by MetaSchedule, whose runner
    fills every argument with random values.
    """
    from tvm import te, tirx

    n, c, h, w = x.shape

    def source(k):
        pick = tirx.const(perm[-1], "int32")
        for i in range(len(perm) - 2, -1, -1):
            pick = tirx.Select(k == i, tirx.const(perm[i], "int32"), pick)
        return pick

    return te.compute((n, c, h, w), lambda b, k, y, xx: x[b, source(k), y, w - 1 - xx],
                      name="mirror")


def up2_phases_te(xp):
    """Exact 2x bilinear upsampling with half-pixel centres of an edge-padded map.

    (N, C, h + 2, w + 2) -> (N, C, h, 2, w, 2): output row ``2i + py``, column ``2j + px``.
    With ``align_corners=False`` an output pixel samples ``i - 0.25`` (even) or ``i + 0.25``
    (odd): weights 1/4 and 3/4 on two neighbours, the border clamped (the padding), in
    PyTorch's order ``wy0 (wx0 a + wx1 b) + wy1 (wx0 c + wx1 d)``. The loads are affine in
    ``j``, so the row vectorises; ``topi.image.resize2d`` computes general coordinates per
    pixel (8x slower here).
    """
    from tvm import te

    n, c, hp, wp = xp.shape

    def pixel(b, k, i, py, j, px):
        fy, fx = py.astype("float32") * 0.5, px.astype("float32") * 0.5
        wy0, wy1, wx0, wx1 = 0.25 + fy, 0.75 - fy, 0.25 + fx, 0.75 - fx
        r, q = i + py, j + px
        return (wy0 * (wx0 * xp[b, k, r, q] + wx1 * xp[b, k, r, q + 1])
                + wy1 * (wx0 * xp[b, k, r + 1, q] + wx1 * xp[b, k, r + 1, q + 1]))

    return te.compute((n, c, hp - 2, 2, wp - 2, 2), pixel, name="up2")


def merge_functions(num_joints: int, size: tuple[int, int], flip_index: tuple[int, ...]):
    """An IRModule with the Relax function of every :data:`VARIANTS` entry (and their kernels).

    Each variant:
    Inputs: ``(1, 2J, H/4, W/4)`` and ``(1, J, H/2, W/2)`` float32, the network's outputs for
    the image (then for its mirror, with flip test). Returns heatmaps ``(J, h, w)`` and tags
    ``(J, h, w, L)``: ``(h, w)`` is ``(H, W)``, or ``(H/2, W/2)`` when ``fast``; L = 2 with flip.
    Every upsampling step is an exact 2x (H is a multiple of 16): an edge pad and
    :func:`up2_phases_te`, each its own kernel, whose phase layout is the upsampled map's
    memory order (the reshape after it is a view).
    """
    from tvm import relax

    bb = relax.BlockBuilder()
    for variant in VARIANTS:
        _emit_variant(bb, variant, num_joints, size, flip_index)
    return bb.get()


def _emit_variant(bb, variant: MergeVariant, num_joints: int, size: tuple[int, int],
                  flip_index: tuple[int, ...]) -> None:
    from tvm import relax
    from tvm.relax.op import add, divide, expand_dims, reshape, stack, strided_slice

    j = num_joints
    h, w = size
    two = relax.const(2.0, "float32")
    opaque = {"op_pattern": OPAQUE}

    def up(t):
        n, c, th, tw = (int(d) for d in t.ty.shape)
        padded = bb.emit_te(pad_edge_te, t, primfunc_name_hint="pad_edge", primfunc_attrs=opaque)
        phases = bb.emit_te(up2_phases_te, padded, primfunc_name_hint="up2", primfunc_attrs=opaque)
        return bb.emit(reshape(phases, (n, c, 2 * th, 2 * tw)))

    def channels(t, lo, hi):
        return bb.emit(strided_slice(t, axes=[1], begin=[lo], end=[hi]))

    def mirror(t, perm):
        """Mirror back along W and permute the joints (flip_index); before upsampling: the
        kernel is symmetric, so both orders give the same floats."""
        return bb.emit_te(mirror_te, t, tuple(perm), primfunc_name_hint="mirror",
                          primfunc_attrs=opaque)

    def heads(o0, o1, mirrored):
        """Heatmaps and tags at H/2 from one pass; a mirrored pass is mirrored back."""
        if mirrored:
            o0 = mirror(o0, list(flip_index) + [j + i for i in flip_index])
            o1 = mirror(o1, list(flip_index))
        o0u = up(o0)
        heat = bb.emit(divide(add(channels(o0u, 0, j), o1), two))
        return heat, channels(o0u, j, 2 * j)

    names = ["heatmaps_tags_s4", "heatmaps_s2"] + (["flipped_s4", "flipped_s2"] if variant.flip else [])
    shapes = [(1, 2 * j, h // 4, w // 4), (1, j, h // 2, w // 2)] * (2 if variant.flip else 1)
    params = [relax.Var(n, relax.TensorType(s, "float32")) for n, s in zip(names, shapes, strict=True)]
    with bb.function(variant.name, params, attrs={"global_symbol": variant.name}):
        with bb.dataflow():
            passes = [heads(params[0], params[1], False)]
            if variant.flip:
                passes.append(heads(params[2], params[3], True))
            if not variant.fast:
                passes = [(up(hm), up(tag)) for hm, tag in passes]
            heat = passes[0][0] if len(passes) == 1 else bb.emit(
                divide(add(passes[0][0], passes[1][0]), two))
            tags = (bb.emit(expand_dims(passes[0][1], -1)) if len(passes) == 1
                    else bb.emit(stack([p[1] for p in passes], axis=-1)))
            mh, mw = int(heat.ty.shape[2]), int(heat.ty.shape[3])
            out = bb.emit_output(relax.Tuple([
                bb.emit(reshape(heat, (j, mh, mw))),
                bb.emit(reshape(tags, (j, mh, mw, len(passes))))]))
        bb.emit_func_output(out)


def with_merges(mod, loaded, size: tuple[int, int]):
    """``mod`` with every :data:`VARIANTS` function added next to ``main``, for the dataset of
    ``loaded`` (a :class:`compile.frontend.importer.LoadedModel`) at input ``size``."""
    import tvm

    ds = loaded.dataset
    functions = dict(mod.functions_items())
    taken = {g.name_hint for g in functions}
    for gvar, func in merge_functions(ds.num_joints, size, tuple(ds.flip_index)).functions_items():
        if gvar.name_hint in taken:
            raise ValueError(f"the network module already defines {gvar.name_hint!r}")
        functions[gvar] = func
    return tvm.IRModule(functions, attrs=mod.attrs)


def reference_merge(outputs, size: tuple[int, int], num_joints: int,
                    flip_index: tuple[int, ...], fast: bool = False):
    """Spec §3.3 with LitePose's own primitives (``torch.nn.functional.interpolate``): the
    yardstick of the compiled merge and of the runtime's CPU merge.

    ``outputs`` is ``[(out0, out1)]`` or, with flip test, ``[(out0, out1), (mirrored0,
    mirrored1)]`` (numpy). Returns heatmaps (J, h, w) and tags (J, h, w, L) as numpy float32.
    """
    import torch
    import torch.nn.functional as F

    def up(t, s):
        return F.interpolate(t, size=s, mode="bilinear", align_corners=False)

    j, flip_index = num_joints, list(flip_index)
    h2 = tuple(outputs[0][1].shape[2:])
    target = h2 if fast else tuple(size)
    o0, o1 = (torch.from_numpy(np.ascontiguousarray(a)) for a in outputs[0])
    o0u = up(o0, h2)
    hms, tags = [up((o0u[:, :j] + o1[:, :j]) / 2, target)], [up(o0u[:, j:2 * j], target)]
    if len(outputs) == 2:
        p0, p1 = (torch.from_numpy(np.ascontiguousarray(a)) for a in outputs[1])
        f0, f1 = torch.flip(up(p0, h2), [3]), torch.flip(p1, [3])
        hms.append(up((f0[:, :j][:, flip_index] + f1[:, :j][:, flip_index]) / 2, target))
        tags.append(up(f0[:, j:2 * j][:, flip_index], target))
    hm = hms[0] if len(hms) == 1 else (hms[0] + hms[1]) / 2
    return hm[0].numpy(), torch.stack([t[0] for t in tags], dim=-1).numpy()
