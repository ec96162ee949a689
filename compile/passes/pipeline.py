"""The passes a build and a tuning run apply, in order, and the version of the graph they make."""

from __future__ import annotations

from compile.model.deconv import DECONV_FORM

from .clip import clip_as_min_max
from .kernel_names import shorten_kernel_names
from .layout import CPU_LAYOUT, cpu_layout

# The graph MetaSchedule sees; tuning databases record it, and a build skips databases of any
# other (their workloads belong to a graph that no longer exists). Bump on any graph change.
GRAPH_VERSION = f"3:deconv-{DECONV_FORM}-merged:{CPU_LAYOUT[0].lower()}:layout-free-weights"


def lower_for_tuning(mod, target):
    """The passes MetaSchedule extracts tasks from: decompose, legalize, fold, fuse (Relax).

    On CPUs ReLU6 becomes min / max (:mod:`compile.passes.clip`), the convs run in
    :data:`~compile.passes.layout.CPU_LAYOUT` (:mod:`compile.passes.layout`) and the weights of
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
        mod = cpu_layout(clip_as_min_max(mod))
        passes.append(relax.transform.AttachAttrLayoutFreeBuffers())
    with target:
        mod = tvm.transform.Sequential(passes)(mod)
    return mod if cpu else shorten_kernel_names(mod)
