"""Tracker settings and checks, and the MetaSchedule builder functions for remote boards."""

from __future__ import annotations

import functools
import os
import socket
import tempfile
from dataclasses import dataclass

DEFAULT_TRACKER_PORT = 9190


@dataclass(frozen=True)
class Tracker:
    """Where boards are handed out, and the key of the boards wanted."""

    host: str
    port: int
    key: str

    def query_command(self) -> str:
        return f"python -m tvm.exec.query_rpc_tracker --host {self.host} --port {self.port}"


def parse_tracker(text: str) -> tuple[str, int]:
    """``"HOST:PORT"`` (or ``"HOST"``) -> (host, port)."""
    host, _, port = text.rpartition(":") if ":" in text else (text, "", str(DEFAULT_TRACKER_PORT))
    try:
        return host or "127.0.0.1", int(port)
    except ValueError as err:
        raise ValueError(f"tracker {text!r} is not HOST:PORT (e.g. 127.0.0.1:9190)") from err


def resolve_tracker(flag: str | None, key: str | None, default_key: str | None) -> Tracker | None:
    """Tracker from ``--tracker``/``--key``, else ``TVM_TRACKER_HOST/PORT/KEY``, else None."""
    if flag:
        host, port = parse_tracker(flag)
    elif os.environ.get("TVM_TRACKER_HOST"):
        host = os.environ["TVM_TRACKER_HOST"]
        port = int(os.environ.get("TVM_TRACKER_PORT", DEFAULT_TRACKER_PORT))
    else:
        return None
    key = key or os.environ.get("TVM_TRACKER_KEY") or default_key
    if not key:
        raise ValueError("a tracker needs a board key: pass --key (or set TVM_TRACKER_KEY)")
    return Tracker(host, port, key)


def check_tracker(tracker: Tracker, timeout: float = 3.0) -> int:
    """Fail within ``timeout`` seconds if the tracker is unreachable; return the free boards.

    Raises ``ValueError`` naming the command that diagnoses the tracker.
    """
    try:
        with socket.create_connection((tracker.host, tracker.port), timeout=timeout):
            pass
    except OSError as err:
        raise ValueError(f"cannot reach the RPC tracker at {tracker.host}:{tracker.port} ({err}); "
                         f"check it with: {tracker.query_command()}") from err
    from tvm import rpc

    queue = rpc.connect_tracker(tracker.host, tracker.port).summary().get("queue_info", {})
    if tracker.key not in queue:
        raise ValueError(f"no board with key {tracker.key!r} is registered at {tracker.host}:"
                         f"{tracker.port} (keys: {', '.join(queue) or 'none'}); "
                         f"see: {tracker.query_command()}")
    return int(queue[tracker.key].get("free", 0))


def _export_so(mod, compiler: str) -> str:
    from tvm.support.cc import cross_compiler

    path = os.path.join(tempfile.mkdtemp(prefix="ms-"), "candidate.so")
    mod.export_library(path, fcompile=cross_compiler(compiler))
    return path


def export_aarch64_so(mod) -> str:
    """MetaSchedule ``f_export``: a linked .so for a 64-bit Arm board (the board needs no compiler)."""
    return _export_so(mod, "aarch64-linux-gnu-g++")


def export_host_so(mod) -> str:
    """MetaSchedule ``f_export``: a linked .so for an x86-64 machine behind a tracker."""
    return _export_so(mod, "g++")


def build_candidate(mod, target, _params):
    """MetaSchedule ``f_build`` without importing ``tvm.s_tir.tensor_intrin``.

    The stock build imports the tensor-intrinsic tables (~20 s in each fresh worker, and the
    builder restarts its workers every batch); LitePose's fp32 convs use none of them.
    """
    from tvm.driver import build as tvm_build
    from tvm.s_tir.transform import RemoveWeightLayoutRewriteBlock

    mod = RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(mod)
    return tvm_build(mod, target=target)


@functools.cache
def _bounded_rpc_runner():
    from tvm.ir.utils import derived_object
    from tvm.s_tir.meta_schedule.runner import RPCRunner
    from tvm.support.popen_pool import PopenPoolExecutor

    @derived_object
    class BoundedRPCRunner(RPCRunner._cls):
        """MetaSchedule's RPCRunner with a worker pool that enforces the session timeout.

        The stock pool has none: when a board disappears, the next candidate's tracker request
        blocks forever and tuning hangs. Here such a candidate fails after ``timeout`` seconds
        (a failed trial), the worker is replaced, and tuning goes on to its summary.
        """

        def __init__(self, rpc_config, evaluator_config):
            super().__init__(rpc_config=rpc_config, evaluator_config=evaluator_config,
                             max_workers=1)
            self.pool = PopenPoolExecutor(max_workers=1, timeout=rpc_config.session_timeout_sec)

    return BoundedRPCRunner


def __getattr__(name: str):  # the runner class needs MetaSchedule: defined on first use only,
    # so the builder workers that import this module for f_build / f_export stay light
    if name == "BoundedRPCRunner":
        return _bounded_rpc_runner()
    raise AttributeError(name)
