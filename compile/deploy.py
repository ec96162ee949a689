"""Deploy: upload an artifact to a board from an RPC tracker, run it, verify it, time it."""

from __future__ import annotations

import logging
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from runtime.meta import METADATA_NAME, ArtifactMeta, WeightsMeta

from . import REPO_ROOT
from .boards.remote import RemoteArtifact, check_artifact, is_virtual_board
from .boards.tracker import Tracker, check_tracker, resolve_tracker
from .build import BuildArgs, build
from .frontend.reference import host_reference, reference_maps
from .model.zoo import get_model, parse_input_size
from .targets import get_target

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeployArgs:
    model: str
    target: str
    artifact: Path | None = None  # default build/<model>-<target>[-HxW]; built when missing
    input_size: str | None = None
    tracker: str | None = None
    key: str | None = None
    repeat: int = 10
    session_timeout: int = 1800  # seconds one board session may last (emulated GPUs are slow)
    rtol: float = 1e-4  # tolerance: rtol * max(1, max |reference|)
    compare_untuned: bool = True  # a tuned or transferred artifact is also timed untuned


@dataclass
class DeployResult:
    max_abs_err: float
    tolerance: float
    latency_ms: float
    emulated: bool
    board: str
    weights: WeightsMeta
    schedules: str = "untuned"  # "untuned", "tuned for <target>" or "transferred from <target>"
    untuned_ms: float | None = None  # the same network without schedules, on the same board
    untuned_err: float | None = None
    device: str = "cpu"  # the artifact's device kind: "cpu" or "opencl"
    merge_errs: dict[str, float] | None = None  # merge function -> max |err| (schema 3)

    @property
    def passed(self) -> bool:
        errs = [self.max_abs_err, *(self.merge_errs or {}).values()]
        if self.untuned_err is not None:
            errs.append(self.untuned_err)
        return max(errs) <= self.tolerance


def untuned_twin(folder: Path, meta: ArtifactMeta) -> Path:
    """Build (once) the same model, size, weights and target without any schedules."""
    twin = folder.parent / f"{folder.name}-untuned"
    if (twin / METADATA_NAME).is_file():
        old = ArtifactMeta.read(twin)
        if old.weights.sha256 == meta.weights.sha256 and old.tuning is None:
            return twin
    h, w = meta.input_hw
    build(BuildArgs(model=meta.model, target=meta.target.name, output=twin,
                    dataset=meta.dataset, checkpoint=meta.weights.path, seed=meta.weights.seed or 0,
                    input_size=f"{h}x{w}", tuning_logs=twin / "no-tuning-logs", transfer=False))
    return twin


def default_artifact(model: str, target: str, input_size: str | None) -> Path:
    suffix = f"-{input_size}" if input_size else ""
    return REPO_ROOT / "build" / f"{model}-{target}{suffix}"


def run_remote(tracker: Tracker, meta: ArtifactMeta, folder: Path, x: np.ndarray, repeat: int,
               session_timeout: int):
    """Upload, run once for the outputs and once per merge function, then time ``repeat``
    network runs; (outputs, {merge function: (heatmaps, tags)}, seconds list)."""
    board = RemoteArtifact(tracker, folder, meta, session_timeout)
    outputs = list(board.infer(x))
    maps = {m.function: tuple(board.infer_maps(x, m.flip, m.fast)[:2]) for m in meta.merges}
    logger.info("uploaded and ran %s on %s (network and %d merge functions): timing %d runs",
                meta.library, tracker.key, len(maps), repeat)
    return outputs, maps, board.time(repeat)


def deploy(args: DeployArgs) -> DeployResult:
    """Verify an artifact on a board: max abs error against PyTorch and median latency."""
    preset = get_target(args.target)
    spec = get_model(args.model)
    size = parse_input_size(args.input_size, spec.input_size)
    tracker = resolve_tracker(args.tracker, args.key, preset.rpc_key, local_default=True)
    folder = Path(args.artifact or default_artifact(spec.name, preset.name, args.input_size))
    if not (folder / METADATA_NAME).is_file():
        logger.info("no artifact at %s: building it", folder)
        build(BuildArgs(model=spec.name, target=preset.name, output=folder,
                        input_size=f"{size[0]}x{size[1]}"))
    meta = check_artifact(folder, preset.name)
    try:
        check_tracker(tracker)
    except ValueError as err:
        if preset.is_gpu and "no board with key" in str(err):
            raise ValueError(f"{err}. The virtual board serves an OpenCL device once it has one: "
                             "'make opencl-runtime ARCH=aarch64', then 'make board-stop board'") from err
        raise
    x, refs = host_reference(meta)
    ref_maps = reference_maps(meta, x, refs)
    start = time.perf_counter()
    outs, maps, secs = _remote(tracker, meta, folder, x, args.repeat, args.session_timeout)
    logger.info("remote run took %.1f s", time.perf_counter() - start)
    scale = max(1.0, *(float(np.abs(r).max()) for r in refs))
    result = DeployResult(_max_err(outs, refs), args.rtol * scale, statistics.median(secs) * 1e3,
                          is_virtual_board(tracker), f"{tracker.key}@{tracker.host}:{tracker.port}",
                          meta.weights, meta.schedules, device=meta.target.device,
                          merge_errs={f: _max_err(maps[f], ref_maps[f]) for f in maps} or None)
    if args.compare_untuned and meta.tuning is not None:
        twin = untuned_twin(folder, meta)
        twin_meta = check_artifact(twin, preset.name)
        outs, _, secs = _remote(tracker, twin_meta, twin, x, args.repeat, args.session_timeout)
        result.untuned_ms = statistics.median(secs) * 1e3
        result.untuned_err = _max_err(outs, refs)
    return result


def _max_err(outs, refs) -> float:
    return max(float(np.abs(o - r).max()) for o, r in zip(outs, refs, strict=True))


def _remote(tracker: Tracker, meta: ArtifactMeta, folder: Path, x, repeat: int, session_timeout: int):
    """``run_remote`` with a failure message that names the tracker check."""
    try:
        return run_remote(tracker, meta, folder, x, repeat, session_timeout)
    except Exception as err:  # RPC failures surface as TVM errors of many kinds
        raise RuntimeError(f"the board {tracker.key!r} failed during deploy ({type(err).__name__}: "
                           f"{str(err).splitlines()[0] if str(err) else ''}); check the tracker "
                           f"with: {tracker.query_command()}") from err
