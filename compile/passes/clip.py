"""ReLU6 as min / max: elementwise ops that follow any layout (``clip`` has no layout inference)."""

from __future__ import annotations


def clip_as_min_max(mod):
    """Rewrite every ``clip(x, lo, hi)`` (ReLU6) as ``minimum(maximum(x, lo), hi)``.

    The same values; but ``clip`` has no layout inference in Relax, so ``ConvertLayout`` would
    wrap each ReLU6 in a transpose back to NCHW and out again (70 extra kernel calls a frame in XS).
    Elementwise ops with scalar constants follow any layout and fuse into the conv before them.
    """
    import tvm
    from tvm import relax
    from tvm.relax.dpl import is_op, rewrite_call, wildcard

    x = wildcard()
    pattern = is_op("relax.clip")(x, wildcard(), wildcard())

    def rewrite(call, matched):
        dtype = call.args[0].ty.dtype
        lo, hi = (relax.const(float(bound.value), dtype) for bound in call.args[1:])
        return relax.op.minimum(relax.op.maximum(matched[x], lo), hi)

    functions = {gvar: rewrite_call(pattern, rewrite, func) if isinstance(func, relax.Function) else func
                 for gvar, func in mod.functions_items()}
    return tvm.IRModule(functions, attrs=mod.attrs)
