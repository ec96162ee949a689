"""The tracker client: where boards are handed out, and checks that fail fast and say why."""

from __future__ import annotations

import argparse
import logging
import os
import socket
from dataclasses import dataclass

logger = logging.getLogger(__name__)

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


def tracker_arg(text: str) -> str:
    """argparse ``type=`` for ``--tracker``: a usage error naming the bad value."""
    try:
        parse_tracker(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


def resolve_tracker(flag: str | None, key: str | None, default_key: str | None,
                    local_default: bool = False) -> Tracker | None:
    """Tracker from ``--tracker``/``--key``, else ``TVM_TRACKER_HOST/PORT/KEY``, else the
    virtual board's tracker at 127.0.0.1:9190 when ``local_default`` (boards), else None."""
    if flag:
        host, port = parse_tracker(flag)
    elif os.environ.get("TVM_TRACKER_HOST"):
        host = os.environ["TVM_TRACKER_HOST"]
        port = int(os.environ.get("TVM_TRACKER_PORT", DEFAULT_TRACKER_PORT))
    elif local_default:
        host, port = "127.0.0.1", DEFAULT_TRACKER_PORT
        logger.info("no tracker given: using the virtual board's at %s:%d ('make board' starts "
                    "it; TRACKER=HOST:PORT or --tracker for real boards)", host, port)
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
        raise ValueError(f"cannot reach the RPC tracker at {tracker.host}:{tracker.port} ({err}): "
                         "start the virtual board with 'make board', or give your tracker with "
                         f"TRACKER=HOST:PORT (--tracker); check one with: {tracker.query_command()}"
                         ) from err
    from tvm import rpc

    queue = rpc.connect_tracker(tracker.host, tracker.port).summary().get("queue_info", {})
    if tracker.key not in queue:
        raise ValueError(f"no board with key {tracker.key!r} is registered at {tracker.host}:"
                         f"{tracker.port} (keys: {', '.join(queue) or 'none'}); "
                         f"see: {tracker.query_command()}")
    return int(queue[tracker.key].get("free", 0))


def request_board(tracker: Tracker, priority: int = 1, session_timeout: float = 0):
    """A session on a free board of ``tracker.key`` (waits in the tracker's queue while none is
    free) and the board's address ``"host:port"``, which ``TrackerSession.request`` does not
    return: the tracker protocol's REQUEST, answered with the server's address, then a connect."""
    from tvm import rpc
    from tvm.rpc import base

    client = rpc.connect_tracker(tracker.host, tracker.port)
    try:
        base.sendjson(client._sock, [base.TrackerCode.REQUEST, tracker.key, "", priority])
        value = base.recvjson(client._sock)
    finally:
        client.close()
    if value[0] != base.TrackerCode.SUCCESS:
        raise RuntimeError(f"the tracker at {tracker.host}:{tracker.port} refused a {tracker.key!r} "
                           f"board: {value}")
    url, port, matchkey = value[1]
    return rpc.connect(url, port, matchkey, session_timeout), f"{url}:{port}"
