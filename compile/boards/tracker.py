"""The tracker client: where boards are handed out, and checks that fail fast and say why."""

from __future__ import annotations

import argparse
import logging
import os
import socket
import struct
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


CONNECT_TIMEOUT_S = 3.0  # connect and handshake; a tracker answers at once when it is alive


class TrackerError(ValueError):
    """A tracker or board that cannot be reached or does not speak TVM RPC; one line naming
    the address and the fix."""


def _unreachable(tracker: Tracker, why: str) -> TrackerError:
    return TrackerError(f"cannot reach the RPC tracker at {tracker.host}:{tracker.port} ({why}): "
                        "start the virtual board with 'make board', or give your tracker with "
                        f"TRACKER=HOST:PORT (--tracker); check one with: {tracker.query_command()}")


def _describe(err: BaseException) -> str:
    if isinstance(err, TimeoutError):  # socket.timeout is TimeoutError
        return f"no answer within {CONNECT_TIMEOUT_S:.0f} s"
    return getattr(err, "strerror", None) or str(err) or type(err).__name__


def tracker_socket(tracker: Tracker, timeout: float = CONNECT_TIMEOUT_S) -> socket.socket:
    """A connected tracker socket after TVM's handshake, with ``timeout`` on every call (the
    caller may lift it for a call that waits on purpose); ``TrackerError`` otherwise."""
    from tvm.rpc import base

    try:
        sock = socket.create_connection((tracker.host, tracker.port), timeout=timeout)
    except OSError as err:
        raise _unreachable(tracker, _describe(err)) from err
    try:
        sock.sendall(struct.pack("<i", base.RPC_TRACKER_MAGIC))
        magic = struct.unpack("<i", base.recvall(sock, 4))[0]
    except OSError as err:  # recvall: OSError("connection reset") when the peer closes
        sock.close()
        raise _unreachable(tracker, f"it accepted the connection, then {_describe(err)}; is it "
                           "a TVM tracker?") from err
    if magic != base.RPC_TRACKER_MAGIC:
        sock.close()
        raise _unreachable(tracker, f"it answered {magic:#x}, not TVM's tracker handshake")
    return sock


def tracker_call(tracker: Tracker, request: list, timeout: float | None = CONNECT_TIMEOUT_S):
    """Send one tracker request and return its answer (``timeout`` None: wait as long as the
    tracker takes, e.g. for a free board); every failure is a ``TrackerError``."""
    from tvm.rpc import base

    sock = tracker_socket(tracker)
    try:
        sock.settimeout(timeout)
        base.sendjson(sock, request)
        return base.recvjson(sock)
    except (OSError, ValueError) as err:  # ValueError: a garbled JSON answer
        raise _unreachable(tracker, f"request failed: {_describe(err)}") from err
    finally:
        sock.close()


def check_tracker(tracker: Tracker, timeout: float = CONNECT_TIMEOUT_S) -> int:
    """Fail within about ``timeout`` seconds if the tracker is unreachable or mute; return the
    free boards. Raises ``TrackerError`` (a ``ValueError``) naming the diagnosing command."""
    from tvm.rpc import base

    answer = tracker_call(tracker, [base.TrackerCode.SUMMARY], timeout)
    if not (isinstance(answer, list) and answer and answer[0] == base.TrackerCode.SUCCESS):
        raise _unreachable(tracker, f"unexpected answer {answer!r}")
    queue = answer[1].get("queue_info", {})
    if tracker.key not in queue:
        raise TrackerError(f"no board with key {tracker.key!r} is registered at {tracker.host}:"
                           f"{tracker.port} (keys: {', '.join(queue) or 'none'}); "
                           f"see: {tracker.query_command()}")
    return int(queue[tracker.key].get("free", 0))


def request_board(tracker: Tracker, priority: int = 1, session_timeout: float = 0):
    """A session on a free board of ``tracker.key`` (waits in the tracker's queue while none is
    free) and the board's address ``"host:port"``, which ``TrackerSession.request`` does not
    return: the tracker protocol's REQUEST, answered with the server's address, then a connect
    while the tracker connection is still open (as ``TrackerSession`` does)."""
    from tvm import rpc
    from tvm.rpc import base

    sock = tracker_socket(tracker)
    try:
        sock.settimeout(None)  # the request waits in the tracker's queue for a free board
        try:
            base.sendjson(sock, [base.TrackerCode.REQUEST, tracker.key, "", priority])
            value = base.recvjson(sock)
        except (OSError, ValueError) as err:
            raise _unreachable(tracker, f"request failed: {_describe(err)}") from err
        if value[0] != base.TrackerCode.SUCCESS:
            raise RuntimeError(f"the tracker at {tracker.host}:{tracker.port} refused a "
                               f"{tracker.key!r} board: {value}")
        url, port, matchkey = value[1]
        return rpc.connect(url, port, matchkey, session_timeout), f"{url}:{port}"
    finally:
        sock.close()
