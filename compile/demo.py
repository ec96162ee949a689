"""``make demo``: the kit's main job in one command, on the embedded defaults.

Build LitePose for an ARM board (the committed host schedules, transferred), start the virtual
aarch64 board, deploy over RPC with the parity verdict, then run ``runtime/run.py`` *inside the
board* on the sample photo shipped in ``assets/``.
"""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from runtime.meta import ArtifactMeta

from . import REPO_ROOT

logger = logging.getLogger(__name__)

SAMPLE_IMAGE = REPO_ROOT / "assets" / "people.jpg"
BOARD_TARGETS = ("rk3399", "rk3399-little", "rpi4", "aarch64")  # CPU targets the board emulates


@dataclass(frozen=True)
class DemoArgs:
    model: str = "xs"
    target: str = "rk3399"
    checkpoint: Path | None = None
    image: Path = SAMPLE_IMAGE
    output: Path = REPO_ROOT / "build" / "demo"
    port: int = 9190  # the virtual board's tracker on 127.0.0.1
    keep_board: bool = False  # leave a board this demo started running


@dataclass
class DemoResult:
    artifact: Path
    verdict: str  # "PASS" or "FAIL"
    rendered: list[Path]
    results_json: Path
    random_weights: bool
    seconds: dict[str, float] = field(default_factory=dict)


def board_run(artifact: Path, image: Path, output: Path) -> subprocess.CompletedProcess:
    """``runtime/run.py`` in the board's Python under qemu (its own site-packages, no torch).

    Numba compiles the grouping kernels at -O0 there: the same results, and a first JIT under
    emulation minutes shorter (its cache is kept apart from the -O2 one).
    """
    from .boards.rootfs import board_dir, board_env

    base = board_dir()
    env = {**board_env(base), "NUMBA_OPT": "0", "NUMBA_CACHE_DIR": str(base / "numba-cache-O0")}
    return subprocess.run([str(base / "pyarm"), "runtime/run.py", "--model", str(artifact),
                           "--input", str(image), "--output", str(output), "--quiet"],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=3600)


def demo(args: DemoArgs, say: Callable[[str], None] = print) -> DemoResult:
    """Run the flow, narrating each step through ``say``; raises ``ValueError`` on bad input
    and ``RuntimeError`` when a step fails."""
    from .boards.virtual import stop_board
    from .targets import get_target

    preset = get_target(args.target)
    if preset.name not in BOARD_TARGETS:
        raise ValueError(f"the virtual board emulates a CPU board: target {preset.name!r} is not "
                         f"one; valid choices: {', '.join(BOARD_TARGETS)}")
    if not Path(args.image).is_file():
        raise ValueError(f"image {str(args.image)!r} does not exist")
    seconds: dict[str, float] = {}
    folder = REPO_ROOT / "build" / f"{args.model}-{preset.name}"
    with _timed(seconds, "build"):
        meta = _build_step(args, preset, folder, say)
    with _timed(seconds, "board"):
        state, started = _board_step(args, preset, say)
    try:
        with _timed(seconds, "deploy"):
            verdict = _deploy_step(args, preset, folder, state, say)
        with _timed(seconds, "run"):
            _run_step(args, folder, say)
    finally:
        if started and not args.keep_board:
            stop_board()
    rendered = sorted(Path(args.output).glob("*.jpg"))
    return DemoResult(folder, verdict, rendered, Path(args.output) / "results.json",
                      meta.weights.random, seconds)


@contextmanager
def _timed(seconds: dict[str, float], step: str):
    """Record the seconds the block took under ``step``."""
    t0 = time.perf_counter()
    try:
        yield
    finally:
        seconds[step] = time.perf_counter() - t0


def _build_step(args: DemoArgs, preset, folder: Path, say) -> ArtifactMeta:
    from .build import BuildArgs, build

    say(f"[1/4] build LitePose-{args.model.upper()} for {preset.name} -> {folder}")
    meta = build(BuildArgs(model=args.model, target=preset.name, output=folder,
                           checkpoint=args.checkpoint)).meta
    say(f"      {meta.describe()}")
    weights = meta.weights
    say(f"      weights: {'SEEDED RANDOM (no CHECKPOINT given)' if weights.random else weights.path}")
    return meta


def _board_step(args: DemoArgs, preset, say):
    """The running virtual board of the preset's key, or one started now: (state, started)."""
    from .boards.virtual import read_state, start_board

    state = read_state()
    if state is not None and state.key == preset.rpc_key:
        say(f"[2/4] the virtual board is already running at 127.0.0.1:{state.tracker_port}")
        return state, False
    if state is not None:
        raise RuntimeError(f"a board with key {state.key!r} is running; stop it with "
                           "'make board-stop' first")
    say(f"[2/4] start the virtual aarch64 board (qemu-user) at 127.0.0.1:{args.port}, key "
        f"{preset.rpc_key} (built once into ~/.cache, about 100 MB of downloads)")
    return start_board(args.port, preset.rpc_key), True


def _deploy_step(args: DemoArgs, preset, folder: Path, state, say) -> str:
    from .deploy import DeployArgs, deploy

    say("[3/4] deploy over RPC: upload, run, compare with PyTorch on this machine")
    res = deploy(DeployArgs(model=args.model, target=preset.name, artifact=folder,
                            tracker=f"127.0.0.1:{state.tracker_port}", key=state.key,
                            repeat=3, compare_untuned=False))
    verdict = "PASS" if res.passed else "FAIL"
    say(f"      max |err| {res.max_abs_err:.3g} (tolerance {res.tolerance:.3g}); "
        f"{res.latency_ms:.0f} ms per frame EMULATED (says nothing about a real board); "
        f"verdict {verdict}")
    return verdict


def _run_step(args: DemoArgs, folder: Path, say) -> None:
    say(f"[4/4] runtime/run.py inside the board on {Path(args.image).name}")
    run = board_run(folder, Path(args.image), Path(args.output))
    for line in run.stdout.splitlines():
        say(f"      board: {line}")
    if run.returncode != 0:
        raise RuntimeError(f"run.py on the board failed (exit {run.returncode}):\n{run.stderr}")
