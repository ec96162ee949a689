"""The passes a build and a tuning run apply, in order, and the version of the graph they make."""

from __future__ import annotations

from compile.model.deconv import DECONV_FORM

from .clip import clip_as_min_max
from .gather import fuse_depth_to_space
from .kernel_names import shorten_kernel_names
from .layout import CPU_LAYOUT, cpu_layout
from .transposes import cancel_transposes

# The graph MetaSchedule sees; tuning databases record it, and a build skips databases of any
# other (their workloads belong to a graph that no longer exists). Bump on any graph change.
GRAPH_VERSION = (f"4:deconv-{DECONV_FORM}-merged:{CPU_LAYOUT[0].lower()}:d2s-kernel:"
                 "layout-free-weights")


def channels_last(target) -> bool:
    """Whether ``target`` (a ``tvm.target.Target``) imports the network with its head's phase
    interleave written channels-last (``CompiledLitePose.with_channels_last``): CPUs, whose
    convs run in NHWC; GPUs keep NCHW and the crop-and-stack interleave."""
    return target.kind.name == "llvm"


def lower_for_tuning(mod, target):
    """The passes MetaSchedule extracts tasks from: decompose, legalize, fold, fuse (Relax).

    On CPUs ReLU6 becomes min / max (:mod:`compile.passes.clip`), the convs run in
    :data:`~compile.passes.layout.CPU_LAYOUT` (:mod:`compile.passes.layout`), the transposes
    that undo each other go (:mod:`compile.passes.transposes`), each channels-last interleave
    becomes one scheduled kernel (:mod:`compile.passes.gather`) and the weights of
    every task are marked layout-free (``AttachAttrLayoutFreeBuffers``): a tuned schedule may
    then ask for them in its own packed layout, and ``compile.tuning.select.apply_database``
    packs the constants at build time. Other targets get short kernel names
    (:mod:`compile.passes.kernel_names`).
    """
    import tvm
    from tvm import relax

    cpu = target.kind.name == "llvm"
    passes = [relax.transform.DecomposeOpsForInference(), relax.transform.CanonicalizeBindings(),
              relax.get_pipeline("zero")]
    if cpu:
        mod = fuse_depth_to_space(cancel_transposes(cpu_layout(clip_as_min_max(mod))))
        passes.append(relax.transform.AttachAttrLayoutFreeBuffers())
    with target:
        mod = tvm.transform.Sequential(passes)(mod)
    return mod if cpu else shorten_kernel_names(mod)
