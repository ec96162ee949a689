"""CPU convs in NHWC / OHWI: ``ConvertLayout`` on the functions that hold convs."""

from __future__ import annotations

# CPU builds run every conv in this layout (activations, weights). Measured: docs/design/passes.md
# (NHWC on CPUs).
CPU_LAYOUT = ("NHWC", "OHWI")


def cpu_layout(mod, layout: tuple[str, str] = CPU_LAYOUT):
    """Run every conv in ``layout`` (activations, weights); the rest of the graph follows.

    ``ConvertLayout`` transposes the image once on the way in and the two outputs once on the
    way out (``main`` keeps its NCHW contract); in between, elementwise ops, adds and concats
    take the new layout and only the head's depth-to-space goes through NCHW. In NHWC the
    vector lanes run along channels: the depthwise 7x7 convs (stride 2 included) load
    contiguous vectors instead of strided rows.
    """
    import tvm
    from tvm import relax

    with_convs = {gvar for gvar, func in mod.functions_items() if _calls_conv(func)}
    if not with_convs:
        return mod
    # only the functions with convs: the others (the heads' merge, compile/frontend/merge.py) have no
    # layout to choose, and ConvertLayout cannot infer one for every op they use (squeeze)
    converted = relax.transform.ConvertLayout({"relax.nn.conv2d": list(layout)})(
        tvm.IRModule({g: f for g, f in mod.functions_items() if g in with_convs}, attrs=mod.attrs))
    functions = dict(mod.functions_items())
    functions.update(converted.functions_items())
    return tvm.IRModule(functions, attrs=mod.attrs)


def _calls_conv(func) -> bool:
    """True when a Relax function calls ``relax.nn.conv2d``."""
    from tvm import relax

    found = []
    if isinstance(func, relax.Function):
        relax.analysis.post_order_visit(func.body, lambda e: found.append(
            isinstance(e, relax.Call) and getattr(e.op, "name", "") == "relax.nn.conv2d"))
    return any(found)
