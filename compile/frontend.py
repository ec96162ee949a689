"""From a LitePose variant to TVM Relax: model construction, ONNX export, both importers."""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from .deconv import DECONV_FORMS, CompiledLitePose
from .litepose import LitePose
from .models import Dataset, ModelSpec
from .weights import WeightsInfo, fuse_bn, init_random, load_checkpoint

logger = logging.getLogger(__name__)

INPUT_NAME = "image"
OUTPUT_NAMES = ("heatmaps_tags_s4", "heatmaps_s2")
# The head's deconvs become one stride-1 conv per fusion level (compile/deconv.py). Measured on
# the host after tuning both forms: the README ("What the compiler is given").
DECONV_FORM = "phase"
# CPU builds run every conv in this layout (activations, weights; see cpu_layout). Measured:
# the README ("What the compiler is given", NHWC on CPUs).
CPU_LAYOUT = ("NHWC", "OHWI")
# The graph MetaSchedule sees; tuning databases record it, and a build skips databases of any
# other (their workloads belong to a graph that no longer exists). Bump on any graph change.
GRAPH_VERSION = f"3:deconv-{DECONV_FORM}-merged:{CPU_LAYOUT[0].lower()}:layout-free-weights"


@dataclass
class LoadedModel:
    """A LitePose network ready to export: the eval model, its BN-folded twin, its weights."""

    spec: ModelSpec
    dataset: Dataset
    model: torch.nn.Module  # eval mode, BN as trained
    fused: torch.nn.Module  # BN folded into the convs (what other engines are given)
    compiled: torch.nn.Module  # ... with exact stride-1 deconvs: what TVM compiles
    weights: WeightsInfo


def load_model(spec: ModelSpec, dataset: Dataset, checkpoint: str | Path | None = None,
               seed: int = 0, deconv_form: str = DECONV_FORM) -> LoadedModel:
    """Build a variant, load ``checkpoint`` strictly or draw seeded random weights."""
    if deconv_form not in DECONV_FORMS:
        raise ValueError(f"unknown deconv form {deconv_form!r}; valid choices: {', '.join(DECONV_FORMS)}")
    model = LitePose(spec.arch(), dataset.num_joints)
    if checkpoint is None:
        weights = init_random(model, seed)
    else:
        weights = load_checkpoint(model, checkpoint)
    model.eval()
    fused = fuse_bn(model)
    return LoadedModel(spec, dataset, model, fused, CompiledLitePose(fused, deconv_form).eval(), weights)


def example_input(size: tuple[int, int], seed: int = 0) -> torch.Tensor:
    """A seeded normalised-image-like input of shape ``(1, 3, H, W)``, float32."""
    return torch.randn((1, 3, *size), generator=torch.Generator().manual_seed(seed))


def export_onnx(model: torch.nn.Module, size: tuple[int, int], path: str | Path,
                opset: int = 17) -> Path:
    """Export to ONNX (opset ``opset``) with named input and outputs."""
    path = Path(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (example_input(size),), str(path), opset_version=opset,
            input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES), dynamo=False,
        )
    return path


def import_exported_program(model: torch.nn.Module, size: tuple[int, int]):
    """Relax IRModule through ``torch.export`` + ``from_exported_program`` (weights embedded)."""
    from tvm.relax.frontend.torch import from_exported_program

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.export.export(model, (example_input(size),))
    return from_exported_program(program, keep_params_as_input=False)


def import_onnx(path: str | Path, size: tuple[int, int]):
    """Relax IRModule through ONNX + ``from_onnx`` (weights embedded)."""
    import onnx
    from tvm.relax.frontend.onnx import from_onnx

    return from_onnx(onnx.load(str(path)), shape_dict={INPUT_NAME: [1, 3, *size]},
                     keep_params_in_input=False)


FRONTENDS = ("torch", "onnx")


def import_relax(loaded: LoadedModel, size: tuple[int, int], frontend: str = "torch",
                 workdir: str | Path | None = None):
    """Import ``loaded.compiled`` into Relax through ``frontend`` ("torch" or "onnx")."""
    if frontend == "torch":
        return import_exported_program(loaded.compiled, size)
    if frontend == "onnx":
        if workdir is None:
            raise ValueError("the onnx frontend needs a workdir for the .onnx file")
        return import_onnx(export_onnx(loaded.compiled, size, Path(workdir) / "model.onnx"), size)
    raise ValueError(f"unknown frontend {frontend!r}; valid choices: {', '.join(FRONTENDS)}")


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

    mod = clip_as_min_max(mod)
    with_convs = {gvar for gvar, func in mod.functions_items() if _calls_conv(func)}
    if not with_convs:
        return mod
    # only the functions with convs: the others (the heads' merge, compile/merge.py) have no
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


def lower_for_tuning(mod, target):
    """The passes MetaSchedule extracts tasks from: decompose, legalize, fold, fuse (Relax).

    On CPUs the convs run in :data:`CPU_LAYOUT` (:func:`cpu_layout`) and the weights of every
    task are marked layout-free (``AttachAttrLayoutFreeBuffers``): a tuned schedule may then ask
    for them in its own packed layout, and :func:`apply_database` packs the constants at build
    time.
    """
    import tvm
    from tvm import relax

    cpu = target.kind.name == "llvm"
    passes = [relax.transform.DecomposeOpsForInference(), relax.transform.CanonicalizeBindings(),
              relax.get_pipeline("zero")]
    if cpu:
        mod = cpu_layout(mod)
        passes.append(relax.transform.AttachAttrLayoutFreeBuffers())
    with target:
        mod = tvm.transform.Sequential(passes)(mod)
    return mod if cpu else shorten_kernel_names(mod)


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
