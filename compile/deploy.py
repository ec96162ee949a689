"""Deploy: upload an artifact to a board from an RPC tracker, run it, verify it, time it."""

from __future__ import annotations

import logging
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from runtime.artifact import Maps
from runtime.meta import METADATA_NAME, ArtifactMeta, WeightsMeta, elf_machine

from . import REPO_ROOT
from .build import BuildArgs, build
from .models import get_dataset, get_model, parse_input_size
from .targets import get_target
from .tracker import Tracker, check_tracker, request_board, resolve_tracker

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


def check_artifact(folder: Path, target: str) -> ArtifactMeta:
    """Metadata of ``folder``; refuse (before any upload) a library for another machine."""
    preset = get_target(target)
    meta = ArtifactMeta.read(folder)
    library = meta.library_path(folder)  # confined, whole, the digest it was built with
    machine = elf_machine(library)
    if machine != preset.arch:
        raise ValueError(f"{library} is an {machine} library but target {target} runs {preset.arch} "
                         f"code; rebuild with 'python -m compile build --target {target}'")
    if meta.target.name != target:
        raise ValueError(f"{folder} was built for {meta.target.name}, not {target}")
    return meta


def load_reference(meta: ArtifactMeta, checkpoint: str | Path | None = None):
    """The PyTorch model of the artifact's own weights (``checkpoint`` overrides the path the
    metadata records); ``ValueError`` when the weights' digest differs from the artifact's."""
    from .frontend import load_model

    weights = meta.weights
    loaded = load_model(get_model(meta.model), get_dataset(meta.dataset),
                        checkpoint or weights.path, weights.seed or 0)
    if loaded.weights.sha256 != weights.sha256:
        raise ValueError("the host cannot rebuild the artifact's weights (digest differs); "
                         "pass the checkpoint it was built with")
    return loaded


def host_reference(meta: ArtifactMeta, seed: int = 7) -> tuple[np.ndarray, list[np.ndarray]]:
    """The fixed input and the PyTorch outputs of the artifact's own weights."""
    import torch

    from .frontend import example_input

    loaded = load_reference(meta)
    x = example_input(meta.input_hw, seed=seed)
    with torch.no_grad():
        return x.numpy(), [o.numpy() for o in loaded.model(x)]


def is_virtual_board(tracker: Tracker) -> bool:
    """True when ``tracker`` is the one the virtual (qemu) board of this machine registered at."""
    from .board import read_state

    state = read_state()
    return bool(state and state.tracker_port == tracker.port
                and tracker.key in (state.key, state.opencl_key)
                and tracker.host in ("127.0.0.1", "localhost"))


class RemoteArtifact:
    """An artifact uploaded to a board from the tracker and loaded there: ``meta`` and
    ``infer`` as :class:`runtime.artifact.Artifact`, so the runtime's pipeline can drive it."""

    def __init__(self, tracker: Tracker, folder: Path, meta: ArtifactMeta, session_timeout: int = 600):
        import tvm
        from tvm.runtime.vm import VirtualMachine

        self.folder, self.meta, self._tvm = Path(folder), meta, tvm
        self.remote, _ = request_board(tracker, priority=1, session_timeout=session_timeout)
        self.remote.upload(str(meta.library_path(self.folder)))  # checked before it leaves
        lib = self.remote.load_module(meta.library)
        self.device = self.remote.cl(0) if meta.target.device == "opencl" else self.remote.cpu(0)
        self.vm = VirtualMachine(lib, self.device)

    def infer(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """image (1, 3, H, W) float32 -> the network's two outputs, run on the board."""
        out0, out1 = (o.numpy() for o in self._network(image))
        return out0, out1

    def infer_maps(self, image: np.ndarray, flip: bool = False, fast: bool = False,
                   keep_raw: bool = False) -> Maps:
        """As :meth:`runtime.artifact.Artifact.infer_maps`, on the board: the network's outputs
        stay there and feed the library's merge function; only the maps come back."""
        spec = self.meta.merge_for(flip, fast)
        if spec is None:
            raise ValueError(f"{self.folder} has no merge function for flip={flip}, fast={fast}")
        first = self._network(image)
        args = list(first)
        if flip:
            args += list(self._network(np.ascontiguousarray(image[:, :, :, ::-1])))
        heat, tags = (t.numpy() for t in self._call(spec.function, *args))
        if (heat.shape, tags.shape) != (spec.heatmaps, spec.tags):
            raise ValueError(f"{self.folder}: {spec.function} returned {heat.shape}, {tags.shape}; "
                             f"its metadata says {spec.heatmaps}, {spec.tags}: rebuild the artifact")
        raw = (first[0].numpy(), first[1].numpy()) if keep_raw else None
        return Maps(heat, tags, raw)

    def _network(self, image: np.ndarray):
        if image.shape != self.meta.input.shape:
            raise ValueError(f"input shape {image.shape} does not match the artifact's "
                             f"{self.meta.input.shape}")
        return self._call(self.meta.network, self._tvm.runtime.tensor(image, self.device))

    def _call(self, function: str, *args):
        """One VM function on the board (RPC: set_input / invoke_stateful / get_outputs)."""
        self.vm.set_input(function, *args)
        self.vm.invoke_stateful(function)
        return list(self.vm.get_outputs(function))

    def time(self, repeat: int) -> list[float]:
        """Seconds of ``repeat`` runs of the last input, timed on the board."""
        timer = self.vm.time_evaluator("invoke_stateful", self.device, number=1, repeat=repeat)
        return list(timer(self.meta.network).results)


def reference_maps(meta: ArtifactMeta, x: np.ndarray, refs: list[np.ndarray]) -> dict:
    """Merge function name -> the reference merge (:func:`compile.merge.reference_merge`) of the
    PyTorch outputs ``refs`` for ``x`` (and for its mirror, run here, with flip test)."""
    import torch

    from .merge import reference_merge

    if not meta.merges:
        return {}
    mirrored = np.ascontiguousarray(x[:, :, :, ::-1])
    with torch.no_grad():
        flipped = [o.numpy() for o in load_reference(meta).model(torch.from_numpy(mirrored))]
    flip_index = tuple(get_dataset(meta.dataset).flip_index)
    return {m.function: reference_merge([refs, flipped] if m.flip else [refs], meta.input_hw,
                                        meta.num_joints, flip_index, fast=m.fast)
            for m in meta.merges}


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
