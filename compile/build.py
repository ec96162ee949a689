"""Build: Relax import -> (tuning database) -> tvm.compile -> export_library + metadata."""

from __future__ import annotations

import datetime
import logging
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from runtime.results import write_json_atomic

from . import __version__
from .artifact import LIBRARY_NAME, METADATA_NAME, SCHEMA_VERSION, check_writable_dir
from .models import MEAN, STD, get_dataset, get_model, parse_input_size
from .targets import TARGETS, TargetPreset, elf_machine, get_target

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
TUNING_LOGS = REPO_ROOT / "tuning_logs"


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
    metadata: dict
    timings: dict = field(default_factory=dict)
    stale: list[Path] = field(default_factory=list)  # databases of another graph, not applied


def lower_for_tuning(mod, target):
    """The passes MetaSchedule extracts tasks from: decompose, legalize, fold, fuse (Relax).

    On CPUs the weights of every task are marked layout-free
    (``AttachAttrLayoutFreeBuffers``): a tuned schedule may then ask for them in its own packed
    layout, and :func:`apply_database` packs the constants at build time.
    """
    import tvm
    from tvm import relax

    passes = [relax.transform.DecomposeOpsForInference(), relax.transform.CanonicalizeBindings(),
              relax.get_pipeline("zero")]
    if target.kind.name == "llvm":
        passes.append(relax.transform.AttachAttrLayoutFreeBuffers())
    with target:
        return tvm.transform.Sequential(passes)(mod)


def apply_database(mod, target, database):
    """Replace each task with its best record, then pack the weights the schedules rewrote.

    The order of ``relax.pipeline.static_shape_tuning_pipeline(cpu_weight_prepack=True)``; the
    layout transforms of constant weights fold away, so ``main`` keeps its contract.
    """
    import tvm
    from tvm import relax

    with target, database:
        return tvm.transform.Sequential([
            relax.transform.MetaScheduleApplyDatabase(enable_warning=False),
            relax.transform.SplitLayoutRewritePreproc(),
            relax.transform.FoldConstant(),
        ])(mod)


def database_dir(tuning_logs: Path, target: str, model: str, size: tuple[int, int]) -> Path:
    """``tuning_logs/<target>/<model>-<H>x<W>/``."""
    return Path(tuning_logs) / target / f"{model}-{size[0]}x{size[1]}"


def schedule_source(preset: TargetPreset, tuning_logs: Path, graph: str,
                    schedules_from: str | None, transfer: bool) -> str | None:
    """Whose tuning databases a build of ``preset`` applies: its own, another CPU target's
    (``schedules_from``; by default ``host`` when the target has none), or none."""
    from .tunedb import target_databases

    if schedules_from is not None:
        source = get_target(schedules_from)
        if source.is_gpu != preset.is_gpu:
            raise ValueError(f"--schedules-from {source.name}: schedules of a "
                             f"{'GPU' if source.is_gpu else 'CPU'} target cannot run on "
                             f"{preset.name}; choose one of "
                             f"{', '.join(n for n, t in TARGETS.items() if t.is_gpu == preset.is_gpu)}")
        return source.name
    if target_databases(tuning_logs, preset.name, graph)[0]:
        return preset.name
    if transfer and not preset.is_gpu and preset.name != "host":
        return "host"
    return None


def compile_module(mod, preset: TargetPreset, tuning_logs: Path, exact_db: Path, graph: str,
                   schedules_from: str | None = None, transfer: bool = True):
    """``tvm.compile`` the Relax module with the tuning databases of the target applied.

    A target without databases of its own applies another CPU target's records for the same
    workloads (``schedules_from``, default ``host``; ``transfer=False`` refuses); the report
    says so. Databases of another graph version are stale: listed, never applied. Returns the
    executable, the tuning report for the metadata (``"untuned"`` or a dict) and the stale
    database folders.
    """
    import tvm
    from tvm.s_tir import meta_schedule as ms

    from .tunedb import graph_version, merge_databases, target_databases

    target = preset.tvm_target()
    source = schedule_source(preset, tuning_logs, graph, schedules_from, transfer)
    stale = target_databases(tuning_logs, preset.name, graph)[1]
    db_dirs = []
    if source is not None:
        db_dirs, stale_source = target_databases(tuning_logs, source, graph)
        stale += [d for d in stale_source if d not in stale]
        exact = Path(tuning_logs) / source / exact_db.name
        db_dirs.sort(key=lambda d: d != exact)  # the exact model and size first
    for d in stale:
        logger.warning("tuning database %s was tuned on another graph (%s, now %s): not applied; "
                       "re-tune", d, graph_version(d) or "unrecorded", graph)
    mod = lower_for_tuning(mod, target)  # fusion (and layout-free weights) tuned or not
    if not db_dirs:
        return tvm.compile(mod, target), "untuned", stale
    tasks = [t.dispatched[0] for t in ms.relax_integration.extract_tasks(mod, target)]
    database, coverage = merge_databases(db_dirs, tasks)
    for cov in coverage:
        logger.info("tuning database %s covers %d/%d tasks", cov.db_dir, cov.covered, cov.total)
    if not any(c.covered for c in coverage):
        return tvm.compile(mod, target), "untuned", stale
    mod = apply_database(mod, target, database)
    report = {
        "tasks": len(tasks),
        "graph": graph,
        "schedules_from": source,
        "transferred": source != preset.name,
        "databases": [{"path": _repo_relative(c.db_dir), "digest": c.digest,
                       "tasks_covered": c.covered} for c in coverage if c.covered],
    }
    return tvm.compile(mod, target), report, stale


def _repo_relative(path: Path) -> str:
    path = Path(path).resolve()
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


def export(executable, preset: TargetPreset, path: Path) -> Path:
    """``export_library`` to ``path``, cross-linking with the preset's compiler for ARM."""
    import tvm.support.cc

    kwargs = {}
    if preset.cross_compiler:
        kwargs["fcompile"] = tvm.support.cc.cross_compiler(preset.cross_compiler)
    executable.export_library(str(path), **kwargs)
    machine = elf_machine(path)
    if machine != preset.arch:
        raise RuntimeError(f"{path} is an {machine} library, but target {preset.name} needs {preset.arch}")
    return path


def make_metadata(size, loaded, preset: TargetPreset, tuning) -> dict:
    """The self-description the runtime reads (JSON, standard library only)."""
    import tvm

    ds = loaded.dataset
    h, w = size
    j = ds.num_joints
    return {
        "schema_version": SCHEMA_VERSION,
        "kit_version": __version__,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "library": LIBRARY_NAME,
        "model": loaded.spec.name,
        "dataset": ds.name,
        "input": {"name": "image", "shape": [1, 3, h, w], "dtype": "float32", "layout": "NCHW",
                  "color": "RGB", "scale": 1 / 255, "mean": list(MEAN), "std": list(STD)},
        "outputs": [
            {"index": 0, "stride": 4, "shape": [1, 2 * j, h // 4, w // 4],
             "channels": {"heatmaps": [0, j], "tags": [j, 2 * j]}},
            {"index": 1, "stride": 2, "shape": [1, j, h // 2, w // 2],
             "channels": {"heatmaps": [0, j]}},
        ],
        "num_joints": j,
        "keypoints": list(ds.keypoints),
        "flip_index": list(ds.flip_index),
        "skeleton": [list(p) for p in ds.skeleton],
        "joint_order": list(ds.joint_order),
        "target": {"name": preset.name, "arch": preset.arch, "tvm": str(preset.tvm_target()),
                   "device": "opencl" if preset.is_gpu else "cpu", "rpc_key": preset.rpc_key},
        "tvm_version": tvm.__version__,
        "weights": asdict(loaded.weights),
        "tuning": tuning,
    }


def build(args: BuildArgs) -> BuildResult:
    """Build one artifact folder: ``model.so`` + ``metadata.json``. Nothing is half-written."""
    from .frontend import GRAPH_VERSION, import_relax, load_model

    spec, dataset, preset = get_model(args.model), get_dataset(args.dataset), get_target(args.target)
    size = parse_input_size(args.input_size, spec.input_size)
    if args.schedules_from is not None:
        get_target(args.schedules_from)  # a bad name fails before any work
    output = check_writable_dir(args.output)
    timings = {}
    t0 = time.perf_counter()
    loaded = load_model(spec, dataset, args.checkpoint, args.seed)
    logger.info("weights: %s", loaded.weights.describe())
    with tempfile.TemporaryDirectory(dir=output, prefix=".build-") as tmp:
        mod = import_relax(loaded, size, args.frontend, workdir=tmp)
        timings["import"] = time.perf_counter() - t0
        exact_db = database_dir(args.tuning_logs, preset.name, spec.name, size)
        t1 = time.perf_counter()
        executable, tuning, stale = compile_module(mod, preset, args.tuning_logs, exact_db,
                                                   GRAPH_VERSION, args.schedules_from, args.transfer)
        timings["compile"] = time.perf_counter() - t1
        t2 = time.perf_counter()
        lib_tmp = export(executable, preset, Path(tmp) / LIBRARY_NAME)
        timings["export"] = time.perf_counter() - t2
        metadata = make_metadata(size, loaded, preset, tuning)
        (output / METADATA_NAME).unlink(missing_ok=True)  # no metadata describes a swapped .so
        os.replace(lib_tmp, output / LIBRARY_NAME)
        write_json_atomic(output / METADATA_NAME, metadata, indent=2)
    timings["total"] = time.perf_counter() - t0
    return BuildResult(output / LIBRARY_NAME, metadata, timings, stale)
