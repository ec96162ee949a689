"""The artifact contract: ``ArtifactMeta``, the one description of a compiled LitePose folder.

``python -m compile build`` writes it (``metadata.json`` next to ``model.so``); deploy and
run.py read it through :meth:`ArtifactMeta.read`. Standard library only: it runs on boards.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from .atomic import write_json_atomic
from .library import ELF_MACHINES, checked_library, plain_file_name

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 3
READABLE_SCHEMAS = (2, 3)  # 2: no merge functions (the runtime merges the heads itself)
LIBRARY_NAME = "model.so"
METADATA_NAME = "metadata.json"
DEVICES = ("cpu", "opencl")
WEIGHT_SOURCES = ("random", "checkpoint")


class MetadataError(ValueError):
    """A metadata file this runtime cannot use; the message names the file and the field."""


@dataclass(frozen=True)
class InputSpec:
    """The network input: a letterboxed, normalised image."""

    shape: tuple[int, int, int, int]  # (1, 3, H, W)
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    scale: float = 1 / 255  # pixel values are multiplied by this before (x - mean) / std
    layout: str = "NCHW"
    color: str = "RGB"
    dtype: str = "float32"


@dataclass(frozen=True)
class OutputSpec:
    """One network output: ``(1, C, H / stride, W / stride)``."""

    shape: tuple[int, int, int, int]
    stride: int


@dataclass(frozen=True)
class MergeSpec:
    """A function of the library that turns network outputs into grouping input (spec §3.3).

    It takes ``inputs`` arrays: the two outputs of ``main`` for the image, then (flip test) for
    its mirror; it returns heatmaps ``(J, h, w)`` and tags ``(J, h, w, L)``, float32, with
    ``(h, w)`` the input size, or half of it when ``fast``; L = 2 with flip test, else 1.
    """

    function: str
    flip: bool
    fast: bool
    inputs: int
    heatmaps: tuple[int, int, int]
    tags: tuple[int, int, int, int]


@dataclass(frozen=True)
class TargetInfo:
    """What the library was compiled for."""

    name: str  # a preset of ``python -m compile build --target``
    arch: str  # a key of ELF_MACHINES
    device: str  # "cpu" or "opencl"
    tvm: str  # the TVM target string
    rpc_key: str | None  # default tracker key of boards of this kind


@dataclass(frozen=True)
class WeightsMeta:
    """Where the weights came from."""

    source: str  # "random" or "checkpoint"
    sha256: str
    path: str | None = None
    seed: int | None = None

    @property
    def random(self) -> bool:
        return self.source == "random"


@dataclass(frozen=True)
class DatabaseRef:
    path: str
    digest: str
    tasks_covered: int


@dataclass(frozen=True)
class TuningInfo:
    """The MetaSchedule records a build applied (absent: untuned)."""

    tasks: int
    tasks_covered: int  # tasks with a record in any of the databases
    graph: str  # the graph version the records were tuned on
    schedules_from: str  # the target whose databases were applied
    transferred: bool  # True when that is another target than the artifact's
    databases: tuple[DatabaseRef, ...]
    machine: str = ""  # "<mcpu>/<model>" whose measurements were preferred
    tasks_elsewhere: int = 0  # covered tasks whose records were all measured on other machines


@dataclass(frozen=True)
class ArtifactMeta:
    """Everything the runtime, deploy and users need to know about one artifact."""

    model: str
    dataset: str
    input: InputSpec
    outputs: tuple[OutputSpec, OutputSpec]  # (heatmaps + tags at stride 4, heatmaps at stride 2)
    keypoints: tuple[str, ...]
    flip_index: tuple[int, ...]
    skeleton: tuple[tuple[int, int], ...]
    joint_order: tuple[int, ...]
    target: TargetInfo
    weights: WeightsMeta
    tuning: TuningInfo | None
    kit_version: str
    tvm_version: str
    created: str
    library: str = LIBRARY_NAME  # a plain file name inside the artifact folder
    library_sha256: str | None = None  # checked before loading or uploading (None: older builds)
    network: str = "main"  # the bare network: image in, the two outputs out
    merges: tuple[MergeSpec, ...] = ()  # none in schema 2: the runtime merges on the CPU
    oks_sigmas: tuple[float, ...] = ()  # per joint, for tracking (empty: built by an older kit)
    schema_version: int = SCHEMA_VERSION

    @property
    def num_joints(self) -> int:
        return len(self.keypoints)

    def merge_for(self, flip: bool, fast: bool) -> MergeSpec | None:
        """The library's merge function for these options (None: merge on the CPU)."""
        return next((m for m in self.merges if m.flip == flip and m.fast == fast), None)

    @property
    def input_hw(self) -> tuple[int, int]:
        return self.input.shape[2], self.input.shape[3]

    @property
    def schedules(self) -> str:
        """``untuned``, ``tuned for <target>`` or ``transferred from <target>``."""
        if self.tuning is None:
            return "untuned"
        if self.tuning.transferred:
            return f"transferred from {self.tuning.schedules_from}"
        return f"tuned for {self.target.name}"

    def describe(self) -> str:
        h, w = self.input_hw
        cover, t = "", self.tuning
        if t is not None:
            elsewhere = (f", {t.tasks_elsewhere} measured only on other machines than {t.machine}"
                         if t.tasks_elsewhere else "")
            cover = f" ({t.tasks_covered}/{t.tasks} tasks{elsewhere})"
        return (f"LitePose-{self.model.upper()} {self.dataset} {h}x{w} on {self.target.name}, "
                f"{self.schedules}{cover}; built {self.created} by kit {self.kit_version}, "
                f"TVM {self.tvm_version}")

    def validate(self, where: str = METADATA_NAME) -> ArtifactMeta:
        """Check the fields against each other and what this runtime reads; returns self."""
        j = self.num_joints
        checks = [
            ("library", plain_file_name(self.library),
             f"a plain file name inside the artifact folder (e.g. {LIBRARY_NAME!r}), "
             f"got {self.library!r}"),
            ("library_sha256", self.library_sha256 is None or (
                isinstance(self.library_sha256, str) and len(self.library_sha256) == 64),
             f"a hex SHA-256 digest, got {self.library_sha256!r}"),
            ("input.shape", len(self.input.shape) == 4 and self.input.shape[:2] == (1, 3),
             f"(1, 3, H, W), got {self.input.shape}"),
            ("input.layout", self.input.layout == "NCHW", f"NCHW, got {self.input.layout!r}"),
            ("input.color", self.input.color == "RGB", f"RGB, got {self.input.color!r}"),
            ("input.dtype", self.input.dtype == "float32", f"float32, got {self.input.dtype!r}"),
            ("outputs", [o.shape[1] for o in self.outputs] == [2 * j, j],
             f"channels (2J, J) = ({2 * j}, {j}), got {[o.shape[1] for o in self.outputs]}"),
            ("flip_index", sorted(self.flip_index) == list(range(j)), f"a permutation of {j} joints"),
            ("joint_order", sorted(self.joint_order) == list(range(j)), f"a permutation of {j} joints"),
            ("oks_sigmas", not self.oks_sigmas or (len(self.oks_sigmas) == j and all(
                isinstance(s, (int, float)) and s > 0 for s in self.oks_sigmas)),
             f"{j} positive numbers (or absent), got {list(self.oks_sigmas)}"),
            ("target.arch", self.target.arch in ELF_MACHINES,
             f"one of {', '.join(ELF_MACHINES)}, got {self.target.arch!r}"),
            ("target.device", self.target.device in DEVICES,
             f"one of {', '.join(DEVICES)}, got {self.target.device!r}"),
            ("weights.source", self.weights.source in WEIGHT_SOURCES,
             f"one of {', '.join(WEIGHT_SOURCES)}, got {self.weights.source!r}"),
        ]
        h, w = self.input_hw
        for i, m in enumerate(self.merges):
            mh, mw = (h // 2, w // 2) if m.fast else (h, w)
            n_l = 2 if m.flip else 1
            checks.append((f"merges[{i}]", m.heatmaps == (j, mh, mw) and m.tags == (j, mh, mw, n_l)
                           and m.inputs == (4 if m.flip else 2),
                           f"heatmaps {(j, mh, mw)}, tags {(j, mh, mw, n_l)} from "
                           f"{4 if m.flip else 2} inputs, got {m.heatmaps}, {m.tags} from {m.inputs}"))
        for name, ok, expected in checks:
            if not ok:
                raise MetadataError(f"{where}: field {name!r} must be {expected}")
        return self

    def library_path(self, folder: str | Path) -> Path:
        """The library, checked before anything loads or uploads it: a regular file inside
        ``folder`` (no link out of it), a whole ELF object, and the digest the build recorded.
        ``MetadataError`` naming the file and the fix otherwise."""
        folder = Path(folder)
        try:
            path = checked_library(folder, self.library, self.library_sha256, METADATA_NAME)
        except ValueError as err:
            raise MetadataError(str(err)) from None
        if self.library_sha256 is None:
            logger.warning("%s records no library digest (built by an older kit): rebuild it to "
                           "have the library checked before loading", folder / METADATA_NAME)
        return path

    def to_dict(self) -> dict:
        raw = dataclasses.asdict(self)
        raw["tuning"] = raw["tuning"] or "untuned"
        return json.loads(json.dumps(raw))  # tuples -> lists, as JSON has them

    @classmethod
    def from_dict(cls, raw: dict, where: str = METADATA_NAME) -> ArtifactMeta:
        """Parse and validate; a newer schema, a missing or mistyped field raises
        ``MetadataError`` naming it."""
        if not isinstance(raw, dict):
            raise MetadataError(f"{where}: expected a JSON object, got {type(raw).__name__}")
        version = raw.get("schema_version")
        if version not in READABLE_SCHEMAS:
            newer = isinstance(version, int) and version > SCHEMA_VERSION
            raise MetadataError(
                f"{where}: field 'schema_version' is {version!r}; this runtime reads versions "
                f"{', '.join(map(str, READABLE_SCHEMAS))}: "
                + ("update the kit on this machine" if newer
                   else "rebuild the artifact with 'python -m compile build'"))
        raw = dict(raw)
        tuning = raw.get("tuning")
        raw["tuning"] = None if tuning == "untuned" else tuning
        try:
            meta = _parse(cls, raw, "")
        except _FieldError as err:
            raise MetadataError(f"{where}: {err}") from None
        return meta.validate(where)

    @classmethod
    def read(cls, folder: str | Path) -> ArtifactMeta:
        """Read ``folder/metadata.json``; ``MetadataError`` when it is missing or unusable."""
        path = Path(folder) / METADATA_NAME
        if not path.is_file():
            raise MetadataError(f"{folder} is not a LitePose artifact folder: {METADATA_NAME} is "
                                "missing (build one with 'python -m compile build')")
        try:
            raw = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise MetadataError(f"{path} is not valid JSON: {err}") from err
        return cls.from_dict(raw, str(path))

    def write(self, folder: str | Path) -> Path:
        """Write ``folder/metadata.json`` atomically."""
        path = Path(folder) / METADATA_NAME
        write_json_atomic(path, self.to_dict(), indent=2)
        return path


class _FieldError(Exception):
    """A field problem inside :func:`_parse`; ``from_dict`` adds the file name."""


_NESTED = {"input": InputSpec, "target": TargetInfo, "weights": WeightsMeta,
           "tuning": TuningInfo}


def _parse(cls, raw, prefix: str):
    """Build dataclass ``cls`` from ``raw``, naming the first missing or mistyped field."""
    if not isinstance(raw, dict):
        raise _FieldError(f"field {prefix.rstrip('.')!r} must be an object, got {raw!r}")
    values = {}
    for f in dataclasses.fields(cls):
        name = prefix + f.name
        if f.name not in raw:
            if f.default is dataclasses.MISSING:
                raise _FieldError(f"field {name!r} is missing")
            continue
        value = raw[f.name]
        if str(f.type).startswith("tuple") and not isinstance(value, list):
            raise _FieldError(f"field {name!r} has an unusable value {value!r}: expected a list")
        try:
            if f.name in _NESTED:
                value = None if value is None else _parse(_NESTED[f.name], value, name + ".")
            elif f.name == "outputs":
                value = tuple(_parse(OutputSpec, o, f"{name}[{i}].") for i, o in enumerate(value))
            elif f.name == "databases":
                value = tuple(_parse(DatabaseRef, d, f"{name}[{i}].") for i, d in enumerate(value))
            elif f.name == "merges":
                value = tuple(_parse(MergeSpec, m, f"{name}[{i}].") for i, m in enumerate(value))
            elif f.name in ("heatmaps", "tags"):
                value = tuple(int(v) for v in value)
            elif f.name == "skeleton":
                value = tuple(tuple(int(v) for v in pair) for pair in value)
            elif isinstance(value, list):
                value = tuple(value)
        except (TypeError, ValueError):
            raise _FieldError(f"field {name!r} has an unusable value {value!r}") from None
        values[f.name] = value
    return cls(**values)
