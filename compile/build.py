"""Build: import (+ the merge functions) -> lower -> select and apply the tuning databases ->
``tvm.compile`` -> ``export_library`` + metadata."""

from __future__ import annotations

import dataclasses
import datetime
import logging
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from runtime.atomic import EXEC_MODE, atomic_dir, atomic_path, check_writable_dir, remove_stale_dirs
from runtime.library import elf_machine, file_sha256
from runtime.meta import (
    LIBRARY_NAME,
    METADATA_NAME,
    ArtifactMeta,
    InputSpec,
    OutputSpec,
    TargetInfo,
    TuningInfo,
    WeightsMeta,
)

from . import __version__
from .model.zoo import MEAN, STD, get_dataset, get_model, parse_input_size
from .targets import TargetPreset, get_target
from .tuning.database import TUNING_LOGS, database_dir

logger = logging.getLogger(__name__)



@dataclass(frozen=True)
class BuildArgs:
    """Resolved arguments of one build."""

    model: str
    target: str
    output: Path
    dataset: str = "crowdpose"
    checkpoint: Path | None = None
    input_size: str | None = None
    frontend: str = "torch"
    seed: int = 0
    tuning_logs: Path = TUNING_LOGS
    schedules_from: str | None = None  # apply this CPU target's tuning databases
    transfer: bool = True  # without databases of its own, a CPU target applies host's

    def display(self) -> str:
        return "\n".join(f"  {k:12s} {v}" for k, v in asdict(self).items())


@dataclass
class BuildResult:
    """What a build produced and how long each stage took (seconds)."""

    library: Path
    meta: ArtifactMeta
    timings: dict = field(default_factory=dict)
    stale: list[Path] = field(default_factory=list)  # databases of another graph, not applied


def compile_module(mod, preset: TargetPreset, tuning_logs: Path, exact_db: Path, graph: str,
                   schedules_from: str | None = None, transfer: bool = True):
    """Lower the Relax module, select and apply its tuning databases, ``tvm.compile`` it.

    A target without databases of its own applies another CPU target's records for the same
    workloads (``schedules_from``, default ``host``; ``transfer=False`` refuses); the report
    says so. Databases of another graph version are stale: listed, never applied. Returns the
    executable, the :class:`TuningInfo` for the metadata (None: untuned) and the stale
    database folders.
    """
    import tvm

    from .passes.pipeline import lower_for_tuning
    from .tuning.select import apply_selection, select_databases

    target = preset.tvm_target()
    mod = lower_for_tuning(mod, target)  # fusion (and layout-free weights) tuned or not
    selection = select_databases(preset, tuning_logs, exact_db, graph, schedules_from, transfer)
    mod, report = apply_selection(mod, target, selection, preset, graph)
    return tvm.compile(mod, target), report, list(selection.stale)


def export(executable, preset: TargetPreset, path: Path) -> Path:
    """``export_library`` to ``path`` atomically, cross-linking with the preset's compiler."""
    import tvm.support.cc

    kwargs = {}
    if preset.cross_compiler:
        kwargs["fcompile"] = tvm.support.cc.cross_compiler(preset.cross_compiler)
    with atomic_path(path, EXEC_MODE) as tmp:
        executable.export_library(str(tmp), **kwargs)
        machine = elf_machine(tmp)
        if machine != preset.arch:
            raise RuntimeError(f"the library is {machine} code, but target {preset.name} needs "
                               f"{preset.arch}")
    return path


def make_metadata(size, loaded, preset: TargetPreset, tuning: TuningInfo | None) -> ArtifactMeta:
    """The self-description the runtime reads."""
    import tvm

    from .frontend.merge import VARIANTS, merge_spec

    ds = loaded.dataset
    h, w = size
    j = ds.num_joints
    return ArtifactMeta(
        model=loaded.spec.name, dataset=ds.name,
        input=InputSpec(shape=(1, 3, h, w), mean=tuple(MEAN), std=tuple(STD)),
        outputs=(OutputSpec((1, 2 * j, h // 4, w // 4), 4), OutputSpec((1, j, h // 2, w // 2), 2)),
        keypoints=tuple(ds.keypoints), flip_index=tuple(ds.flip_index),
        skeleton=tuple(tuple(p) for p in ds.skeleton), joint_order=tuple(ds.joint_order),
        oks_sigmas=tuple(ds.oks_sigmas),
        target=TargetInfo(preset.name, preset.arch, "opencl" if preset.is_gpu else "cpu",
                          str(preset.tvm_target()), preset.rpc_key),
        weights=WeightsMeta(**asdict(loaded.weights)),
        tuning=tuning, kit_version=__version__, tvm_version=tvm.__version__,
        merges=tuple(merge_spec(v, j, size) for v in VARIANTS),
        created=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    ).validate()


ARTIFACT_FILES = {LIBRARY_NAME, METADATA_NAME}


def check_output(path: Path) -> None:
    """Refuse an output that a build would clobber: a file, or a folder holding more than an
    artifact (the rebuild replaces the folder whole); its parent must take new folders."""
    if path.exists():
        if not path.is_dir():
            raise ValueError(f"output {str(path)!r} exists and is not a folder: name a new or "
                             "artifact folder")
        other = sorted(p.name for p in path.iterdir()
                       if p.name not in ARTIFACT_FILES and not p.name.startswith("."))
        if other:
            raise ValueError(f"output folder {str(path)!r} holds files that are not an artifact's "
                             f"({', '.join(other[:5])}): a build replaces the folder whole; name "
                             "a new folder or an artifact folder")
    check_writable_dir(path.parent, "the output's parent folder")
    remove_stale_dirs(path)  # a killed build's staging folder


def build(args: BuildArgs) -> BuildResult:
    """Build one artifact folder: ``model.so`` + ``metadata.json``, written into a staging
    folder next to the output and swapped in whole: an interrupted build leaves the old
    artifact as it was."""
    spec, dataset, preset = get_model(args.model), get_dataset(args.dataset), get_target(args.target)
    size = parse_input_size(args.input_size, spec.input_size)
    if args.schedules_from is not None:
        get_target(args.schedules_from)  # a bad name fails before any work
    output = Path(args.output)
    check_output(output)
    with atomic_dir(output) as staging:
        result = _build(args, spec, dataset, preset, size, staging)
    return dataclasses.replace(result, library=output / LIBRARY_NAME)


def _build(args: BuildArgs, spec, dataset, preset: TargetPreset, size, output: Path) -> BuildResult:
    from .frontend.importer import import_relax, load_model
    from .frontend.merge import with_merges
    from .passes.pipeline import GRAPH_VERSION, channels_last

    timings = {}
    t0 = time.perf_counter()
    loaded = load_model(spec, dataset, args.checkpoint, args.seed)
    logger.info("weights: %s", loaded.weights.describe())
    with tempfile.TemporaryDirectory(dir=output, prefix=".build-") as tmp:
        mod = with_merges(import_relax(loaded, size, args.frontend, workdir=tmp,
                                       channels_last=channels_last(preset.tvm_target())),
                          loaded, size)
    timings["import"] = time.perf_counter() - t0
    exact_db = database_dir(args.tuning_logs, preset.name, spec.name, size)
    t1 = time.perf_counter()
    executable, tuning, stale = compile_module(mod, preset, args.tuning_logs, exact_db,
                                               GRAPH_VERSION, args.schedules_from, args.transfer)
    timings["compile"] = time.perf_counter() - t1
    meta = make_metadata(size, loaded, preset, tuning)
    t2 = time.perf_counter()
    library = export(executable, preset, output / LIBRARY_NAME)
    meta = dataclasses.replace(meta, library_sha256=file_sha256(library))
    meta.write(output)
    timings["export"] = time.perf_counter() - t2
    timings["total"] = time.perf_counter() - t0
    return BuildResult(output / LIBRARY_NAME, meta, timings, stale)
