"""Graph passes of the CPU pipeline: the depth-to-space kernel and the cancelled transposes."""

from __future__ import annotations

import numpy as np
import pytest

from compile.model.deconv import phase_rows
from compile.passes.gather import SCHEDULED, depth_to_space_kernel, fuse_depth_to_space
from compile.passes.transposes import cancel_transposes

pytestmark = pytest.mark.compile


def slow_interleave(y: np.ndarray) -> np.ndarray:
    """``out[b, 2m+a, 2k+e, ch] = y[b, m+a, k+e, (2a+e)C + ch]``, one element at a time."""
    n, h1, w1, c4 = y.shape
    h, w, c = h1 - 1, w1 - 1, c4 // 4
    out = np.empty((n, 2 * h, 2 * w, c), y.dtype)
    for b in range(n):
        for i in range(2 * h):
            for j in range(2 * w):
                a, e = i % 2, j % 2
                for ch in range(c):
                    out[b, i, j, ch] = y[b, i // 2 + a, j // 2 + e, (2 * a + e) * c + ch]
    return out


def run(mod, *arrays: np.ndarray, entry: str = "main"):
    import tvm
    from tvm import relax

    vm = relax.VirtualMachine(tvm.compile(mod, "llvm"), tvm.cpu())
    out = vm[entry](*(tvm.runtime.tensor(a) for a in arrays))
    return out.numpy() if hasattr(out, "numpy") else [o.numpy() for o in out]


@pytest.mark.parametrize("shape", [(1, 4, 4, 16), (2, 3, 5, 7), (1, 1, 1, 1), (1, 8, 6, 24)])
def test_the_kernel_is_the_slow_interleave(shape):
    import tvm

    n, h, w, c = shape
    y = np.random.default_rng(sum(shape)).standard_normal((n, h + 1, w + 1, 4 * c)).astype("float32")
    func = depth_to_space_kernel(n, h, w, c)
    assert func.attrs[SCHEDULED]
    lib = tvm.compile(tvm.IRModule({"main": func}), "llvm")
    out = tvm.runtime.tensor(np.zeros((n, 2 * h, 2 * w, c), "float32"))
    lib["main"](tvm.runtime.tensor(y), out)
    np.testing.assert_array_equal(out.numpy(), slow_interleave(y))
    rows = y.reshape(-1, c)[phase_rows(n, h, w)].reshape(n, 2 * h, 2 * w, c)
    np.testing.assert_array_equal(rows, slow_interleave(y))  # phase_rows is the same gather


def gather_module(n: int, h: int, w: int, c: int, indices: np.ndarray):
    from tvm import relax

    bb = relax.BlockBuilder()
    y = relax.Var("y", relax.TensorType((n, h + 1, w + 1, 4 * c), "float32"))
    with bb.function("main", [y]):
        with bb.dataflow():
            rows = bb.emit(relax.op.reshape(y, (-1, c)))
            picked = bb.emit(relax.op.take(rows, relax.const(indices), axis=0))
            out = bb.emit_output(relax.op.reshape(picked, (n, 2 * h, 2 * w, c)))
        bb.emit_func_output(out)
    return bb.get()


def test_the_phase_gather_becomes_the_kernel_and_other_gathers_stay():
    n, h, w, c = 1, 3, 4, 5
    y = np.random.default_rng(0).standard_normal((n, h + 1, w + 1, 4 * c)).astype("float32")
    fused = fuse_depth_to_space(gather_module(n, h, w, c, phase_rows(n, h, w)))
    script = fused.script()
    assert "R.take(" not in script and script.count("R.call_tir(cls.depth_to_space_3x4x5") == 1
    np.testing.assert_array_equal(run(fused, y), slow_interleave(y))
    other = phase_rows(n, h, w)[::-1].copy()  # a gather of other rows is not an interleave
    kept = fuse_depth_to_space(gather_module(n, h, w, c, other))
    assert "R.take(" in kept.script() and "depth_to_space" not in kept.script()
    np.testing.assert_array_equal(run(kept, y), y.reshape(-1, c)[other].reshape(n, 2 * h, 2 * w, c))


def transposing_module():
    """An identity permute, a pair that undoes itself, and a pair around a concat."""
    from tvm import relax

    bb = relax.BlockBuilder()
    a = relax.Var("a", relax.TensorType((1, 4, 5, 8), "float32"))
    b = relax.Var("b", relax.TensorType((1, 4, 5, 3), "float32"))
    with bb.function("main", [a, b]):
        with bb.dataflow():
            same = bb.emit(relax.op.permute_dims(a, [0, 1, 2, 3]))
            nchw_a = bb.emit(relax.op.permute_dims(same, [0, 3, 1, 2]))
            nchw_b = bb.emit(relax.op.permute_dims(b, [0, 3, 1, 2]))
            cat = bb.emit(relax.op.concat([nchw_a, nchw_b], axis=1))
            back = bb.emit(relax.op.permute_dims(cat, [0, 2, 3, 1]))
            there = bb.emit(relax.op.permute_dims(back, [0, 2, 1, 3]))
            out = bb.emit_output(relax.op.permute_dims(there, [0, 2, 1, 3]))
        bb.emit_func_output(out)
    return bb.get()


def test_transposes_that_undo_each_other_go_and_the_values_stay():
    mod = transposing_module()
    rng = np.random.default_rng(1)
    a, b = (rng.standard_normal(s).astype("float32") for s in ((1, 4, 5, 8), (1, 4, 5, 3)))
    cancelled = cancel_transposes(mod)
    script = cancelled.script()
    assert mod.script().count("R.permute_dims(") == 6 and "R.permute_dims(" not in script
    assert "axis=3" in script
    np.testing.assert_array_equal(run(cancelled, a, b), run(mod, a, b))
    np.testing.assert_array_equal(run(cancelled, a, b), np.concatenate([a, b], axis=3))
    assert cancel_transposes(cancelled).script() == script  # idempotent
