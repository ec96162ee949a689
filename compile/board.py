"""The virtual aarch64 board: an arm64 Debian root filesystem run under qemu-user, serving TVM RPC.

``ensure_board`` builds it once under ``~/.cache/litepose-kit/board-arm64`` (override with
``LITEPOSE_BOARD_DIR``): Debian bookworm arm64 packages unpacked with ``dpkg -x`` (no arm64 code
runs to install them), the aarch64 wheels of the device dependencies in ``site/``, and a
``pyarm`` wrapper that runs the board's Python 3.11 under ``qemu-aarch64-static``.
``start_board`` starts a tracker on 127.0.0.1 and one or more RPC servers inside the board, all
registered under one key (a small farm, as a lab puts many boards behind one key);
``stop_board`` ends exactly those processes (pid files). ``ensure_opencl`` adds PoCL (arm64)
so that, with TVM's OpenCL runtime installed (``compile.opencl``), the board also serves an
OpenCL device under its own key (``compile.board_opencl`` says how qemu-user is helped).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from .board_opencl import (
    OPENCL_LIBRARY,
    PACKAGES,
    build_access_shim,
    has_opencl,
    marker,
    opencl_env,
    write_linker,
)

logger = logging.getLogger(__name__)

MIRROR = "http://deb.debian.org/debian"
SUITE = "bookworm"
WHEELS = ["apache-tvm==0.27.0.post1", "apache-tvm-ffi==0.1.14.post1", "numpy==2.4.6",
          "ml_dtypes", "psutil", "cloudpickle", "tornado", "opencv-python-headless", "numba",
          "llvmlite", "typing_extensions", "tqdm", "orjson"]
PLATFORMS = ["manylinux_2_28_aarch64", "manylinux_2_27_aarch64", "manylinux_2_26_aarch64",
             "manylinux_2_17_aarch64", "manylinux2014_aarch64"]


def board_dir() -> Path:
    return Path(os.environ.get("LITEPOSE_BOARD_DIR", Path.home() / ".cache" / "litepose-kit" / "board-arm64"))


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


def _run(cmd: list[str], **kw) -> None:
    logger.info("$ %s", " ".join(cmd))
    subprocess.run(cmd, check=True, **kw)


def _require(tool: str, package: str) -> None:
    if not shutil.which(tool):
        raise ValueError(f"{tool} is missing: install Debian's {package} (make setup does)")


def build_rootfs(root: Path) -> None:
    """Download bookworm arm64 (minbase + python3) and unpack every package into ``root``."""
    _require("debootstrap", "debootstrap")
    dl = root.parent / "debootstrap"
    shutil.rmtree(dl, ignore_errors=True)
    _run(["debootstrap", "--download-only", "--arch=arm64", "--variant=minbase",
          "--include=python3", SUITE, str(dl), MIRROR], stdout=subprocess.DEVNULL)
    debs = sorted((dl / "var/cache/apt/archives").glob("*.deb"))
    if not debs:
        raise RuntimeError(f"debootstrap downloaded no packages into {dl}")
    for deb in debs:
        _run(["dpkg-deb", "-x", str(deb), str(root)])
    shutil.rmtree(dl)


def install_wheels(site: Path, wheels_dir: Path) -> None:
    """aarch64 cp311 wheels of the device side, installed without running arm64 code."""
    abi = ["--only-binary=:all:", "--no-deps", "--python-version", "3.11", "--implementation", "cp"]
    for platform in PLATFORMS:
        abi += ["--platform", platform]
    pip = [sys.executable, "-m", "pip"]
    _run([*pip, "download", *abi, "-d", str(wheels_dir), *WHEELS], stdout=subprocess.DEVNULL)
    _run([*pip, "install", *abi, "--no-index", "--no-compile", "--target", str(site),
          *map(str, sorted(wheels_dir.glob("*.whl")))], stdout=subprocess.DEVNULL)
    tvm = site / "tvm"
    for heavy in ("lib/libtvm_compiler.so", "3rdparty"):  # compiler and CUDA bits: runtime only
        path = tvm / heavy
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    for cuda in tvm.glob("lib/*cuda*"):
        cuda.unlink()


def write_pyarm(base: Path) -> Path:
    """``pyarm``: the board's python3.11 under qemu; ``-0`` keeps child interpreters emulated."""
    pyarm = base / "pyarm"
    root = base / "rootfs"
    pyarm.write_text("#!/bin/sh\n"
                     f'exec qemu-aarch64-static -L "{root}" -0 "{pyarm}" '
                     f'"{root}/usr/bin/python3.11" "$@"\n')
    pyarm.chmod(0o755)
    return pyarm


def ensure_board() -> Path:
    """Build the board once (about 100 MB of downloads); later calls return at once."""
    base = board_dir()
    done = base / ".complete"
    if done.is_file():
        if json.loads(done.read_text()).get("wheels") == WHEELS:
            return base
        logger.info("the board's Python packages changed: reinstalling %s", base / "site")
        site = base / "site.partial"
        shutil.rmtree(site, ignore_errors=True)
        install_wheels(site, base / "wheels")
        shutil.rmtree(base / "wheels")
        old = base / "site"
        old.unlink() if old.is_symlink() else shutil.rmtree(old, ignore_errors=True)
        os.replace(site, old)
        done.write_text(json.dumps({**json.loads(done.read_text()), "wheels": WHEELS}))
        return base
    _require("qemu-aarch64-static", "qemu-user-static")
    start = time.perf_counter()
    tmp = base.with_name(base.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    build_rootfs(tmp / "rootfs")
    install_wheels(tmp / "site", tmp / "wheels")
    shutil.rmtree(tmp / "wheels")
    shutil.rmtree(base, ignore_errors=True)
    os.replace(tmp, base)
    write_pyarm(base)
    done.write_text(json.dumps({"built_s": round(time.perf_counter() - start, 1), "wheels": WHEELS}))
    return base


def ensure_opencl(base: Path | None = None) -> Path:
    """Add PoCL (arm64 packages from Debian, unpacked into the root filesystem) and the two
    host-side helpers to the board, once."""
    base = base or ensure_board()
    (base / "pocl-cache").mkdir(exist_ok=True)  # compiled kernels, kept across runs
    done = marker(base)
    if done.get("opencl"):
        return base
    _require("aarch64-linux-gnu-gcc", "gcc-aarch64-linux-gnu")
    dl = base / "debootstrap-opencl"
    shutil.rmtree(dl, ignore_errors=True)
    _run(["debootstrap", "--download-only", "--arch=arm64", "--variant=minbase",
          f"--include=python3,{','.join(PACKAGES)}", SUITE, str(dl), MIRROR],
         stdout=subprocess.DEVNULL)
    for deb in sorted((dl / "var/cache/apt/archives").glob("*.deb")):
        _run(["dpkg-deb", "-x", str(deb), str(base / "rootfs")])
    shutil.rmtree(dl)
    # TVM dlopens "libOpenCL.so" (the -dev name): point it at the ICD loader, as a board's
    # ocl-icd-opencl-dev or libmali package does
    ocl = base / "rootfs/usr/lib/aarch64-linux-gnu/libOpenCL.so"
    ocl.unlink(missing_ok=True)
    ocl.symlink_to("libOpenCL.so.1")
    write_linker(base)
    build_access_shim(base)
    (base / ".complete").write_text(json.dumps({**done, "opencl": True}))
    logger.info("PoCL added to the virtual board in %s", base)
    return base


def board_env(base: Path) -> dict[str, str]:
    """Environment for the board's Python: its site-packages, and the checkout for run.py."""
    repo = Path(__file__).resolve().parent.parent
    return {**os.environ, "PYTHONPATH": f"{base / 'site'}:{repo}",
            "NUMBA_CACHE_DIR": str(base / "numba-cache"), "PYTHONNOUSERSITE": "1",
            **opencl_env(base)}


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
