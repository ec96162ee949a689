"""The virtual aarch64 board's processes: a tracker on 127.0.0.1 and RPC servers in the board.

``start_board`` starts a tracker and one or more RPC servers inside the board's root filesystem
(``compile.boards.rootfs``), all registered under one key (a small farm, as a lab puts many
boards behind one key); ``stop_board`` ends exactly those processes (pid files,
``run/board.json``).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from .opencl import (
    OPENCL_LIBRARY,
    has_opencl,
)
from .rootfs import board_dir, board_env, ensure_board

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BoardState:
    """What ``start_board`` started (written to ``run/board.json``)."""

    tracker_host: str
    tracker_port: int
    key: str
    tracker_pid: int
    server_pids: tuple[int, ...]  # one emulated RPC server per board
    opencl_key: str | None = None  # the board's OpenCL device (PoCL), served under this key
    opencl_pid: int | None = None

    @property
    def pids(self) -> tuple[int, ...]:
        """Every RPC server started (CPU boards, then the OpenCL one)."""
        return self.server_pids + ((self.opencl_pid,) if self.opencl_pid else ())



def _state_path() -> Path:
    return board_dir() / "run" / "board.json"


def read_state() -> BoardState | None:
    path = _state_path()
    if not path.is_file():
        return None
    raw = json.loads(path.read_text())
    if "server_pid" in raw:  # written by a kit of one board per tracker
        raw["server_pids"] = [raw.pop("server_pid")]
    return BoardState(**{**raw, "server_pids": tuple(raw["server_pids"])})


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def board_cpus(boards: int) -> list[list[int]]:
    """This machine's CPUs shared out among ``boards`` emulated boards, as a lab's boards each
    have their own: N boards on C cores get C/N cores each (one each, shared round-robin, when
    N > C). One board gets them all."""
    cpus = sorted(os.sched_getaffinity(0))
    if boards >= len(cpus):
        return [[cpus[i % len(cpus)]] for i in range(boards)]
    share = len(cpus) // boards
    return [cpus[i * share:(i + 1) * share] for i in range(boards)]


def _server(base: Path, port: int, key: str, log: Path, env: dict, libraries: list[str],
            cpus: list[int] | None = None) -> subprocess.Popen:
    """One emulated RPC server registered at the tracker as ``key``."""
    site = base / "site"
    out = log.open("w")
    loads = ["--load-library", ":".join(str(site / "tvm/lib" / lib) for lib in libraries)]
    return subprocess.Popen(
        [str(base / "pyarm"), "-m", "tvm.exec.rpc_server", "--host", "127.0.0.1",
         "--port", "9090", "--port-end", "9190", "--tracker", f"127.0.0.1:{port}", "--key", key,
         *loads], env=env, stdout=out, stderr=out, start_new_session=True,
        preexec_fn=None if cpus is None else functools.partial(os.sched_setaffinity, 0, cpus))


def start_board(port: int = 9190, key: str = "rk3399", timeout: float = 180.0,
                boards: int = 1, opencl_key: str | None = "rk3399-mali") -> BoardState:
    """Start a tracker on 127.0.0.1:``port`` and ``boards`` emulated RPC servers registered as
    ``key`` (each its own qemu process and port; several are pinned to their own cores, see
    :func:`board_cpus`, and their TVM thread pools sized to them). A board with OpenCL
    (``make opencl-runtime ARCH=aarch64``) also serves its PoCL device as ``opencl_key``."""
    if boards < 1:
        raise ValueError(f"boards must be >= 1, got {boards}")
    if opencl_key == key:
        raise ValueError(f"the OpenCL device needs a key of its own, not {key!r} (--opencl-key)")
    base = ensure_board()
    state = read_state()
    if state and any(_alive(pid) for pid in state.pids):
        raise ValueError(f"a board is already running (tracker 127.0.0.1:{state.tracker_port}, key "
                         f"{state.key!r}); stop it with 'make board-stop'")
    run_dir = _state_path().parent
    run_dir.mkdir(parents=True, exist_ok=True)
    log = (run_dir / "tracker.log").open("w")
    tracker = subprocess.Popen([sys.executable, "-m", "tvm.exec.rpc_tracker", "--host", "127.0.0.1",
                                "--port", str(port), "--port-end", str(port + 1)],
                               stdout=log, stderr=log, start_new_session=True)
    servers = []
    extra = ["libtvm_runtime_extra.so"]
    for i, cpus in enumerate(board_cpus(boards)):
        env = board_env(base) if boards == 1 else {**board_env(base), "TVM_NUM_THREADS": str(len(cpus))}
        servers.append(_server(base, port, key, run_dir / f"server-{i}.log", env, extra,
                               None if boards == 1 else cpus))
    opencl = None
    if opencl_key and has_opencl(base):
        opencl = _server(base, port, opencl_key, run_dir / "server-opencl.log", board_env(base),
                         [*extra, OPENCL_LIBRARY])
    elif opencl_key:
        logger.info("no OpenCL on the board ('make opencl-runtime ARCH=aarch64' adds it): "
                    "%r is not served", opencl_key)
    state = BoardState("127.0.0.1", port, key, tracker.pid, tuple(s.pid for s in servers),
                       opencl_key if opencl else None, opencl.pid if opencl else None)
    _state_path().write_text(json.dumps(asdict(state)))
    try:
        wait_registered(state, timeout)
    except BaseException:
        stop_board()
        raise
    return state


def wait_registered(state: BoardState, timeout: float) -> None:
    """Until every server of ``state`` is free at the tracker under its key."""
    from tvm import rpc

    deadline = time.time() + timeout
    while time.time() < deadline:
        dead = [i for i, pid in enumerate(state.server_pids) if not _alive(pid)]
        if dead:
            raise RuntimeError(f"the board's RPC server exited; see {_state_path().parent}/"
                               f"server-{dead[0]}.log")
        if state.opencl_pid and not _alive(state.opencl_pid):
            raise RuntimeError(f"the board's OpenCL RPC server exited; see "
                               f"{_state_path().parent}/server-opencl.log")
        try:
            # connect_tracker logs a warning per retry: wait for the port quietly first
            socket.create_connection((state.tracker_host, state.tracker_port), timeout=1).close()
            queue = rpc.connect_tracker(state.tracker_host, state.tracker_port).summary()["queue_info"]
            if queue.get(state.key, {}).get("free", 0) >= len(state.server_pids) and (
                    not state.opencl_key or queue.get(state.opencl_key, {}).get("free", 0) >= 1):
                return
        except Exception:  # tracker still starting
            pass
        time.sleep(1)
    raise TimeoutError(f"the {len(state.server_pids)} board(s) did not register under "
                       f"{state.key!r} within {timeout:.0f} s")


def _kill_group(pid: int) -> None:
    """End a process we started and its children (it leads its own session / group)."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    except PermissionError:
        os.kill(pid, signal.SIGKILL)


def stop_board() -> bool:
    """End the tracker and the board servers started by ``start_board`` (pid files only)."""
    state = read_state()
    if state is None:
        return False
    for pid in (*state.pids, state.tracker_pid):
        _kill_group(pid)
    _state_path().unlink(missing_ok=True)
    return True
