"""``python -m compile board``: build, start, stop or query the virtual aarch64 board."""

from __future__ import annotations

from compile.cli import fail, make_parser, positive_int, setup_logging


def main(argv: list[str]) -> int:
    parser = make_parser("board", "The virtual aarch64 board (qemu-user + arm64 Debian + the aarch64 "
                         "TVM wheel) serving TVM RPC behind a tracker on 127.0.0.1. TVM RPC has no "
                         "authentication: never expose it beyond a trusted network.")
    parser.add_argument("action", choices=["start", "stop", "status", "build"])
    parser.add_argument("--port", type=int, default=9190, help="tracker port (127.0.0.1)")
    parser.add_argument("--key", default="rk3399", help="key the board registers under")
    parser.add_argument("--boards", type=positive_int, default=1,
                        help="emulated boards to start under the key (a tuning farm)")
    parser.add_argument("--opencl-key", default="rk3399-mali",
                        help="key of the board's OpenCL device (PoCL), served when the board has "
                        "OpenCL ('make opencl-runtime ARCH=aarch64'; default: %(default)s)")
    parser.add_argument("--no-opencl", action="store_true", help="do not serve the OpenCL device")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    import time

    from compile.boards import rootfs
    from compile.boards import virtual as board

    try:
        if args.action == "build":
            start = time.perf_counter()
            base = rootfs.ensure_board()
            print(f"board root filesystem ready in {base} ({time.perf_counter() - start:.0f} s)")
        elif args.action == "start":
            start = time.perf_counter()
            state = board.start_board(args.port, args.key, boards=args.boards,
                                      opencl_key=None if args.no_opencl else args.opencl_key)
            print(f"{len(state.server_pids)} virtual board(s) up in {time.perf_counter() - start:.0f} s: "
                  f"tracker {state.tracker_host}:{state.tracker_port}, key {state.key!r} (pids: "
                  f"tracker {state.tracker_pid}, boards {', '.join(map(str, state.server_pids))})")
            if state.opencl_key:
                print(f"its OpenCL device (PoCL, emulated) is served as {state.opencl_key!r} "
                      f"(pid {state.opencl_pid})")
        elif args.action == "stop":
            print("board stopped" if board.stop_board() else "no board was running")
        else:
            return _status(board)
    except (ValueError, RuntimeError, TimeoutError) as err:
        return fail(str(err))
    return 0


def _status(board) -> int:
    state = board.read_state()
    if state is None:
        print("no virtual board is running ('make board' starts one)")
        return 1
    from tvm import rpc

    try:
        summary = rpc.connect_tracker(state.tracker_host, state.tracker_port).summary()
    except Exception as err:
        return fail(f"tracker 127.0.0.1:{state.tracker_port} does not answer: {err}")
    print(f"tracker {state.tracker_host}:{state.tracker_port}, {len(state.server_pids)} virtual "
          f"board(s) started under {state.key!r} (pids {', '.join(map(str, state.server_pids))})")
    for key, queue in summary.get("queue_info", {}).items():
        print(f"  {key:12s} free {queue.get('free', 0)}  pending {queue.get('pending', 0)}")
    for server in summary.get("server_info", []):
        print(f"  server {server.get('key')} at {server.get('addr')}")
    return 0
