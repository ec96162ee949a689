"""From a LitePose variant to TVM Relax: model construction, ONNX export, both importers."""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from compile.model.deconv import DECONV_FORM, DECONV_FORMS, CompiledLitePose
from compile.model.litepose import LitePose
from compile.model.weights import WeightsInfo, fuse_bn, init_random, load_checkpoint
from compile.model.zoo import Dataset, ModelSpec

logger = logging.getLogger(__name__)

INPUT_NAME = "image"
OUTPUT_NAMES = ("heatmaps_tags_s4", "heatmaps_s2")


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
                 workdir: str | Path | None = None, channels_last: bool = False):
    """Import ``loaded.compiled`` into Relax through ``frontend`` ("torch" or "onnx");
    ``channels_last``: its head's interleave written channels-last, as CPU targets import it
    (``compile.passes.pipeline.channels_last``)."""
    model = loaded.compiled.with_channels_last() if channels_last else loaded.compiled
    if frontend == "torch":
        return import_exported_program(model, size)
    if frontend == "onnx":
        if workdir is None:
            raise ValueError("the onnx frontend needs a workdir for the .onnx file")
        return import_onnx(export_onnx(model, size, Path(workdir) / "model.onnx"), size)
    raise ValueError(f"unknown frontend {frontend!r}; valid choices: {', '.join(FRONTENDS)}")
