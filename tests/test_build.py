"""Build: host parity with PyTorch, both importers, every target preset, metadata, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from compile.build import BuildArgs, build
from compile.frontend.importer import example_input, import_relax, load_model
from compile.model.zoo import DATASETS, MODELS
from compile.targets import TARGETS, get_target
from runtime.library import elf_machine
from runtime.meta import SCHEMA_VERSION, ArtifactMeta

pytestmark = pytest.mark.compile


def run_host_library(path, x: np.ndarray) -> list[np.ndarray]:
    import tvm
    from tvm import relax

    vm = relax.VirtualMachine(tvm.runtime.load_module(str(path)), tvm.cpu())
    return [o.numpy() for o in vm["main"](tvm.runtime.tensor(x))]


def assert_parity(outs, refs) -> float:
    worst = 0.0
    for out, ref in zip(outs, refs, strict=True):
        assert out.shape == ref.shape
        err = float(np.abs(out - ref).max())
        assert err <= 1e-4 * max(1.0, float(np.abs(ref).max())), err
        worst = max(worst, err)
    return worst


def torch_reference(model: str, size, dataset="crowdpose", seed=0):
    loaded = load_model(MODELS[model], DATASETS[dataset], None, seed)
    x = example_input(size, seed=7)
    with torch.no_grad():
        refs = [o.numpy() for o in loaded.model(x)]  # the BN-as-trained network
    return x.numpy(), refs


def test_xs_host_artifact_matches_pytorch(xs_host_artifact):
    x, refs = torch_reference("xs", (256, 256))
    assert max(np.abs(r).max() for r in refs) > 1.0  # realistic magnitudes, not vanishing
    assert_parity(run_host_library(xs_host_artifact / "model.so", x), refs)


def test_larger_model_host_artifact_matches_pytorch(tmp_path):
    build(BuildArgs(model="s", target="host", output=tmp_path, dataset="coco",
                    tuning_logs=tmp_path / "none"))
    x, refs = torch_reference("s", (448, 448), dataset="coco")
    assert refs[0].shape == (1, 34, 112, 112)
    assert_parity(run_host_library(tmp_path / "model.so", x), refs)


def test_torch_export_and_onnx_paths_agree_in_both_interleave_forms(tmp_path):
    import tvm
    from tvm import relax

    from compile.passes.pipeline import lower_for_tuning

    loaded = load_model(MODELS["xs"], DATASETS["crowdpose"])
    size = (64, 96)  # small: four imports and compiles
    target = get_target("host").tvm_target()
    x = tvm.runtime.tensor(example_input(size, seed=5).numpy())
    results = []
    for frontend in ("torch", "onnx"):
        for channels_last in (False, True):  # the CPU form through the CPU passes
            mod = import_relax(loaded, size, frontend, workdir=tmp_path, channels_last=channels_last)
            if channels_last:
                mod = lower_for_tuning(mod, target)  # ONNX's gather indices are not constants
                assert mod["main"].script().count("depth_to_space_") == (3 if frontend == "torch" else 0)
            vm = relax.VirtualMachine(tvm.compile(mod, target), tvm.cpu())
            results.append([o.numpy() for o in vm["main"](x)])
    for other in results[1:]:
        assert_parity(other, results[0])


def test_cpu_graph_runs_convs_in_nhwc_and_transposes_only_at_its_edges():
    from tvm.s_tir import meta_schedule as ms

    from compile.passes.clip import clip_as_min_max
    from compile.passes.gather import tunable
    from compile.passes.layout import cpu_layout
    from compile.passes.pipeline import channels_last, lower_for_tuning

    loaded = load_model(MODELS["xs"], DATASETS["crowdpose"])
    mod = import_relax(loaded, (64, 64))
    script = cpu_layout(clip_as_min_max(mod))["main"].script()
    assert script.count("R.nn.conv2d(") == script.count('data_layout="NHWC"') > 100
    assert "R.clip(" not in script and mod["main"].script().count("R.clip(") == 70  # ReLU6 kept

    def tasks(target):
        target = get_target(target).tvm_target()
        imported = import_relax(loaded, (64, 64), channels_last=channels_last(target))
        return ms.relax_integration.extract_tasks(lower_for_tuning(imported, target), target)

    host = tasks("host")
    edges = [t.task_name for t in host if "transpose" in t.task_name]
    assert len(edges) == 3, edges  # the image in, the two outputs out; none in the head
    assert not any("maximum" in name or "minimum" in name for name in edges)  # no ReLU6 wrapped
    kernels = [t.task_name for t in host if t.task_name.startswith("depth_to_space")]
    assert len(kernels) == 3 and not any(t.task_name in kernels for t in tunable(host))
    assert len(tunable(host)) == len(host) - 3
    gpu = [t.task_name for t in tasks("host-opencl")]
    assert not any("transpose" in n or "depth_to_space" in n for n in gpu)  # GPUs keep NCHW


@pytest.mark.parametrize("target", list(TARGETS))
def test_every_target_builds(tmp_path, target):
    result = build(BuildArgs(model="xs", target=target, output=tmp_path, input_size="64x96",
                             tuning_logs=tmp_path / "none"))
    preset = TARGETS[target]
    assert elf_machine(result.library) == preset.arch
    meta = json.loads((tmp_path / "metadata.json").read_text())
    assert meta == result.meta.to_dict() and ArtifactMeta.read(tmp_path) == result.meta
    assert meta["input"]["shape"] == [1, 3, 64, 96]
    assert meta["outputs"][0]["shape"] == [1, 28, 16, 24]
    assert meta["outputs"][1]["shape"] == [1, 14, 32, 48]
    assert meta["target"]["name"] == target and meta["tuning"] == "untuned"
    assert meta["weights"]["source"] == "random" and meta["weights"]["seed"] == 0
    if target == "rk3399-mali":
        assert b"__kernel void" in result.library.read_bytes()  # OpenCL source is embedded
    assert not list(tmp_path.glob(".build-*"))


def test_metadata_describes_the_artifact(xs_host_artifact):
    meta = json.loads((xs_host_artifact / "metadata.json").read_text())
    ds = DATASETS["crowdpose"]
    assert meta["schema_version"] == SCHEMA_VERSION and meta["library"] == "model.so"
    assert meta["model"] == "xs" and meta["dataset"] == "crowdpose" and len(meta["keypoints"]) == 14
    assert meta["keypoints"] == list(ds.keypoints) and meta["flip_index"] == list(ds.flip_index)
    assert meta["joint_order"] == list(ds.joint_order)
    assert meta["skeleton"] == [list(p) for p in ds.skeleton]
    assert meta["input"]["mean"] == [0.485, 0.456, 0.406]
    assert meta["input"]["std"] == [0.229, 0.224, 0.225]
    assert meta["outputs"] == [{"shape": [1, 28, 64, 64], "stride": 4},
                               {"shape": [1, 14, 128, 128], "stride": 2}]
    assert len(meta["weights"]["sha256"]) == 64
    import tvm

    assert meta["tvm_version"] == tvm.__version__


def test_bad_input_size_and_unwritable_output(tmp_path):
    with pytest.raises(ValueError, match="multiples of 16"):
        build(BuildArgs(model="xs", target="host", output=tmp_path, input_size="250x256"))
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ValueError, match="not writable"):
        build(BuildArgs(model="xs", target="host", output=blocker / "out"))
    with pytest.raises(ValueError, match=r"unknown target 'rk3588'.*host, rk3399"):
        build(BuildArgs(model="xs", target="rk3588", output=tmp_path))
