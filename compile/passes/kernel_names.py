"""Kernel names short enough for OpenCL drivers that cache kernels under their names."""

from __future__ import annotations

KERNEL_NAME_LIMIT = 64


def shorten_kernel_names(mod, limit: int = KERNEL_NAME_LIMIT):
    """Give every fused PrimFunc a name of at most ``limit`` characters (its prefix and a digest).

    Fusion names a kernel after all its ops (260+ characters in the head); OpenCL drivers that
    cache kernels under their names fail on such names (PoCL: "Final linking of kernel ...
    failed", a path component over 255 bytes). ``NormalizeGlobalVar`` renames each function to
    its new ``global_symbol`` and updates the calls.
    """
    import hashlib

    from tvm import relax, tirx

    renamed = False
    for gvar, func in list(mod.functions_items()):
        name = gvar.name_hint
        if isinstance(func, tirx.PrimFunc) and len(name) > limit:
            digest = hashlib.sha1(name.encode()).hexdigest()[:8]
            mod[gvar] = func.with_attr("global_symbol", f"{name[:limit - 9]}_{digest}")
            renamed = True
    return relax.transform.NormalizeGlobalVar()(mod) if renamed else mod
