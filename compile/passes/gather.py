"""The channels-last phase interleave as one scheduled kernel (no tuning task, no gather)."""

from __future__ import annotations

import numpy as np

from compile.model.deconv import phase_rows

SCHEDULED = "tirx.is_scheduled"  # TVM's mark of a PrimFunc that needs no (further) schedule
OPAQUE = 8  # relax.transform's OpPatternKind.kOpaque


def depth_to_space_kernel(n: int, h: int, w: int, c: int, dtype: str = "float32"):
    """``out[b, 2m+a, 2k+e, ch] = y[b, m+a, k+e, (2a+e)C + ch]``: a scheduled PrimFunc.

    ``y`` is the phase conv's NHWC output ``(N, H+1, W+1, 4C)``, ``out`` ``(N, 2H, 2W, C)``.
    Output rows run in parallel and channels are vectorised; every read is a contiguous run of
    ``C`` floats. Scheduled here, it needs no tuning task.
    """
    from tvm import s_tir, te

    y = te.placeholder((n, h + 1, w + 1, 4 * c), dtype, name="y")

    def read(b, i, j, ch):
        a, e = i % 2, j % 2
        return y[b, i // 2 + a, j // 2 + e, (2 * a + e) * c + ch]

    out = te.compute((n, 2 * h, 2 * w, c), read, name="depth_to_space")
    sch = s_tir.Schedule(te.create_prim_func([y, out]))
    b, i, j, ch = sch.get_loops(sch.get_sblock("depth_to_space"))
    _, a = sch.split(i, [None, 2])
    _, e = sch.split(j, [None, 2])
    rows = sch.fuse(b, sch.get_loops(sch.get_sblock("depth_to_space"))[1])
    sch.parallel(rows)
    sch.unroll(a)
    sch.unroll(e)
    sch.vectorize(ch)
    # opaque: FuseOps would otherwise fuse the concat after it and lose the schedule
    return sch.mod["main"].with_attrs({SCHEDULED: True, "op_pattern": OPAQUE})


def fuse_depth_to_space(mod):
    """Replace ``reshape(take(reshape(y, (-1, C)), phase_rows, 0), (N, 2H, 2W, C))`` with a call
    of :func:`depth_to_space_kernel`, for ``y`` of shape ``(N, H+1, W+1, 4C)``.

    A gather is rewritten only when its constant indices are exactly
    :func:`compile.model.deconv.phase_rows` for those shapes; any other gather is left alone.
    """
    import tvm
    from tvm import relax

    reshape, take = tvm.ir.Op.get("relax.reshape"), tvm.ir.Op.get("relax.take")

    def bound(mutator, expr):
        return mutator.lookup_binding(expr) if isinstance(expr, relax.Var) else expr

    def shape(expr) -> tuple[int, ...] | None:
        dims = expr.ty.shape
        if dims is None or not all(isinstance(d, tvm.tirx.IntImm) for d in dims):
            return None
        return tuple(int(d) for d in dims)

    @relax.expr_functor.mutator
    class Fuse(relax.PyExprMutator):
        def __init__(self, mod):
            super().__init__(mod)
            self.kernels = {}

        def visit_call_(self, call):
            call = super().visit_call_(call)
            gathered = bound(self, call.args[0]) if call.op.same_as(reshape) else None
            if not (isinstance(gathered, relax.Call) and gathered.op.same_as(take)
                    and isinstance(gathered.args[1], tvm.ir.expr.Constant)):
                return call
            rows = bound(self, gathered.args[0])
            if not (isinstance(rows, relax.Call) and rows.op.same_as(reshape)
                    and int(gathered.attrs.axis) == 0):
                return call
            y, out_shape = rows.args[0], shape(call)
            y_shape = shape(y)
            if y_shape is None or out_shape is None or len(y_shape) != 4 or len(out_shape) != 4:
                return call
            n, h, w, c = y_shape[0], y_shape[1] - 1, y_shape[2] - 1, y_shape[3] // 4
            indices = gathered.args[1].value.numpy()
            if (out_shape != (n, 2 * h, 2 * w, c) or y_shape[3] != 4 * c
                    or not np.array_equal(indices, phase_rows(n, h, w))):
                return call
            dtype = y.ty.dtype
            key = (n, h, w, c, dtype)
            if key not in self.kernels:
                name = f"depth_to_space_{h}x{w}x{c}"
                self.kernels[key] = self.builder_.add_func(  # named after its GlobalVar
                    depth_to_space_kernel(*key).without_attr("global_symbol"), name)
            return relax.call_tir(self.kernels[key], [y], relax.TensorType(out_shape, dtype))

        def run(self):
            for gvar, func in self.builder_.get().functions_items():
                if isinstance(func, relax.Function):
                    self.builder_.update_func(gvar, relax.analysis.remove_all_unused(
                        self.visit_expr(func)))
            return self.builder_.get()

    return Fuse(mod).run()


def tunable(tasks: list) -> list:
    """The extracted tasks MetaSchedule tunes and a build's coverage counts: not the kernels
    marked scheduled here."""
    return [t for t in tasks if not t.dispatched[0]["main"].attrs.get(SCHEDULED, False)]
