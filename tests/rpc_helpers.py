"""Loopback RPC tracker and server that a test starts and stops (127.0.0.1 only, by pid)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager

import psutil


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_tree(proc: subprocess.Popen) -> None:
    """Kill a process we started and every child it spawned (a surviving child stays registered)."""
    try:
        children = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    for p in [*children]:
        try:
            p.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=30)


def wait_for_key(port: int, key: str, timeout: float = 60.0) -> None:
    from tvm import rpc

    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if key in rpc.connect_tracker("127.0.0.1", port).summary().get("queue_info", {}):
                return
        except Exception:  # tracker not up yet
            pass
        time.sleep(0.5)
    raise TimeoutError(f"no server registered under {key!r} at 127.0.0.1:{port} in {timeout} s")


def start_tracker(port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "tvm.exec.rpc_tracker", "--host", "127.0.0.1",
                             "--port", str(port), "--port-end", str(port + 1)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc
        except OSError:
            time.sleep(0.2)
    stop_tree(proc)
    raise TimeoutError("tracker did not start")


def start_server(tracker_port: int, key: str, argv_prefix: list[str] | None = None,
                 env: dict | None = None, extra: list[str] | None = None) -> subprocess.Popen:
    """An RPC server registered at the tracker (``argv_prefix`` runs it emulated, e.g. qemu)."""
    port = free_port()
    cmd = [*(argv_prefix or [sys.executable]), "-m", "tvm.exec.rpc_server", "--host", "127.0.0.1",
           "--port", str(port), "--port-end", str(port + 1),
           "--tracker", f"127.0.0.1:{tracker_port}", "--key", key, *(extra or [])]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, **(env or {})}, start_new_session=True)


@contextmanager
def loopback_board(key: str = "loop-host"):
    """Tracker + one native server under ``key``; yields the tracker port."""
    port = free_port()
    tracker = start_tracker(port)
    server = None
    try:
        server = start_server(port, key)
        wait_for_key(port, key)
        yield port, server
    finally:
        if server is not None:
            stop_tree(server)
        stop_tree(tracker)
