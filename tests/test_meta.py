"""The artifact contract: ArtifactMeta round trip, validation, clear errors naming the field."""

from __future__ import annotations

import dataclasses
import json

import pytest

from runtime.meta import (
    SCHEMA_VERSION,
    ArtifactMeta,
    DatabaseRef,
    InputSpec,
    MetadataError,
    OutputSpec,
    TargetInfo,
    TuningInfo,
    WeightsMeta,
)

pytestmark = pytest.mark.unit


def sample(tuning: TuningInfo | None = None) -> ArtifactMeta:
    return ArtifactMeta(
        model="xs", dataset="tiny", input=InputSpec((1, 3, 64, 96), (0.5,) * 3, (0.25,) * 3),
        outputs=(OutputSpec((1, 6, 16, 24), 4), OutputSpec((1, 3, 32, 48), 2)),
        keypoints=("a", "b", "c"), flip_index=(1, 0, 2), skeleton=((0, 1), (1, 2)),
        joint_order=(2, 0, 1), target=TargetInfo("rk3399", "aarch64", "cpu", "llvm", "rk3399"),
        weights=WeightsMeta("random", "ab" * 32, None, 0), tuning=tuning, kit_version="0.1.0",
        tvm_version="0.27.0", created="2026-12-01T00:00:00+00:00")


def write(folder, raw) -> None:
    (folder / "metadata.json").write_text(json.dumps(raw))


@pytest.mark.parametrize("tuning", [None, TuningInfo(
    tasks=39, tasks_covered=30, graph="2:x", schedules_from="host", transferred=True,
    databases=(DatabaseRef("tuning_logs/host/xs-64x96", "d1", 30),))])
def test_round_trip_through_the_file(tmp_path, tuning):
    meta = sample(tuning)
    meta.write(tmp_path)
    raw = json.loads((tmp_path / "metadata.json").read_text())
    assert raw["schema_version"] == SCHEMA_VERSION and raw["input"]["shape"] == [1, 3, 64, 96]
    assert raw["tuning"] == "untuned" if tuning is None else raw["tuning"]["transferred"]
    again = ArtifactMeta.read(tmp_path)
    assert again == meta and again.num_joints == 3 and again.input_hw == (64, 96)
    assert again.schedules == ("untuned" if tuning is None else "transferred from host")
    assert list(tmp_path.iterdir()) == [tmp_path / "metadata.json"]  # no temporary left


@pytest.mark.parametrize("path,value,needle", [
    (("schema_version",), SCHEMA_VERSION + 1, "update the kit on this machine"),
    (("schema_version",), 1, "rebuild the artifact"),
    (("input", "mean"), None, "field 'input.mean' is missing"),
    (("weights",), None, "field 'weights' is missing"),
    (("outputs",), None, "field 'outputs' is missing"),
    (("target", "device"), "vulkan", "field 'target.device' must be one of cpu, opencl"),
    (("input", "layout"), "NHWC", "field 'input.layout' must be NCHW"),
    (("flip_index",), [0, 0, 1], "field 'flip_index' must be a permutation of 3 joints"),
    (("outputs",), [{"shape": [1, 6, 16, 24]}], "field 'outputs[0].stride' is missing"),
    (("input", "shape"), 7, "field 'input.shape' has an unusable value 7"),
    (("oks_sigmas",), [0.1, 0.2], "field 'oks_sigmas' must be 3 positive numbers (or absent)"),
    (("oks_sigmas",), [0.1, -1, 0.2], "field 'oks_sigmas' must be 3 positive numbers"),
])
def test_bad_metadata_names_the_field(tmp_path, path, value, needle):
    raw = sample().to_dict()
    parent = raw
    for key in path[:-1]:
        parent = parent[key]
    if value is None:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    write(tmp_path, raw)
    with pytest.raises(MetadataError, match=r"metadata\.json") as info:
        ArtifactMeta.read(tmp_path)
    assert needle in str(info.value)


def test_missing_or_broken_file(tmp_path):
    with pytest.raises(MetadataError, match="not a LitePose artifact folder"):
        ArtifactMeta.read(tmp_path)
    (tmp_path / "metadata.json").write_text("{not json")
    with pytest.raises(MetadataError, match="is not valid JSON"):
        ArtifactMeta.read(tmp_path)


def test_bench_banner_counts_the_tasks_of_every_database():
    from compile.bench.engines import banner

    tuning = TuningInfo(tasks=39, tasks_covered=33, graph="2:x", schedules_from="host",
                        transferred=False, databases=(DatabaseRef("a", "d1", 10),
                                                      DatabaseRef("b", "d2", 30)))
    text = banner(sample(tuning), threads=2)
    assert "33/39 tasks tuned, 2 database(s)" in text and "64x96, 2 threads" in text
    assert "tvm-tuned: untuned" in banner(sample(), threads=1)
    assert "other machines" not in text
    foreign = dataclasses.replace(tuning, machine="znver3/amd-epyc-2c", tasks_elsewhere=4)
    said = "4 measured only on other machines than znver3/amd-epyc-2c"
    assert f"33/39 tasks tuned, 2 database(s), {said}" in banner(sample(foreign), threads=2)
    assert f"(33/39 tasks, {said})" in sample(foreign).describe()
