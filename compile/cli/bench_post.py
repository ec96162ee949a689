"""``python -m compile bench-post``: the runtime's post-processing against the network alone."""

from __future__ import annotations

from pathlib import Path

from compile.cli import fail, make_parser, positive_int, setup_logging


def main(argv: list[str]) -> int:
    parser = make_parser("bench-post", "Post-processing benchmark: Numba grouping against the slow "
                         "reference (clean and crowded maps), the tracker and smoother per frame, "
                         "and run.py (serial and pipelined, tracking on) against inference alone, "
                         "each in its own process; medians and ratios, nothing asserted.")
    parser.add_argument("--artifact", type=Path, default=Path("build/xs-host"),
                        help="a host artifact for the end-to-end part (default build/xs-host)")
    parser.add_argument("--repeats", type=positive_int, default=5, help="timed runs a kernel case")
    parser.add_argument("--frames", type=positive_int, default=40, help="frames of the test video")
    parser.add_argument("--rounds", type=positive_int, default=2,
                        help="alternating rounds of inference-only, serial and pipelined runs")
    parser.add_argument("--threads", type=positive_int, nargs="+", default=[1, 2],
                        help="thread counts of the end-to-end part (default 1 2)")
    parser.add_argument("--no-kernels", action="store_true", help="the end-to-end part only")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    from compile.bench.post import bench_post

    try:
        bench_post(args.artifact, args.repeats, args.frames, args.rounds, tuple(args.threads),
                   kernels=not args.no_kernels)
    except (ValueError, OSError) as err:
        return fail(err)
    return 0
