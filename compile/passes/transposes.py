"""Transposes that undo each other: what ``ConvertLayout`` leaves around the head's interleave."""

from __future__ import annotations

MAX_ROUNDS = 8  # a cancelled pair can expose another; LitePose needs two rounds


def _axes(call, ndim: int) -> list[int]:
    axes = call.attrs.axes
    return list(range(ndim))[::-1] if axes is None else [int(a) for a in axes]


def cancel_transposes(mod):
    """Drop identity ``permute_dims``, pairs that undo each other, and pairs around a concat.

    ``permute(concat([permute(a, p), permute(b, p)], k), q)`` with ``q`` undoing ``p`` is
    ``concat([a, b], p[k])``: in the CPU graph the channels-last interleave (compile.model.deconv)
    meets NCHW concats that ``ConvertLayout`` wraps in transposes. Values are unchanged; repeated
    until nothing changes.
    """
    import tvm
    from tvm import relax
    from tvm_ffi import structural_equal

    permute, concat = tvm.ir.Op.get("relax.permute_dims"), tvm.ir.Op.get("relax.concat")

    def permuted(mutator, expr):
        """(input, axes) when ``expr`` is bound to a permute_dims, else None."""
        value = mutator.lookup_binding(expr) if isinstance(expr, relax.Var) else expr
        if isinstance(value, relax.Call) and value.op.same_as(permute):
            return value.args[0], _axes(value, value.args[0].ty.ndim)
        return None

    @relax.expr_functor.mutator
    class Cancel(relax.PyExprMutator):
        def visit_call_(self, call):
            call = super().visit_call_(call)
            if not call.op.same_as(permute):
                return call
            x = call.args[0]
            q = _axes(call, x.ty.ndim)
            if q == sorted(q):
                return x
            inner = permuted(self, x)
            if inner is not None and [inner[1][k] for k in q] == sorted(q):
                return inner[0]
            value = self.lookup_binding(x) if isinstance(x, relax.Var) else None
            if isinstance(value, relax.Call) and value.op.same_as(concat):
                parts = value.args[0]
                parts = self.lookup_binding(parts) if isinstance(parts, relax.Var) else parts
                if not isinstance(parts, relax.Tuple):
                    return call
                inputs = [permuted(self, f) for f in parts.fields]
                if all(i is not None and i[1] == inputs[0][1] for i in inputs):
                    p = inputs[0][1]
                    if [p[k] for k in q] == sorted(q):
                        return relax.op.concat([i[0] for i in inputs], axis=p[int(value.attrs.axis)])
            return call

    for _ in range(MAX_ROUNDS):
        before = mod
        functions = {}
        for gvar, func in mod.functions_items():
            if isinstance(func, relax.Function):
                func = relax.analysis.remove_all_unused(Cancel().visit_expr(func))
            functions[gvar] = func
        mod = tvm.IRModule(functions, attrs=mod.attrs)
        if structural_equal(mod, before):
            break
    return mod
