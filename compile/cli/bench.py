"""``python -m compile bench``: TVM (tuned, untuned) against the other engines, side by side."""

from __future__ import annotations

from pathlib import Path

from compile.cli import add_input_size_arg, fail, make_parser, positive_int, setup_logging


def main(argv: list[str]) -> int:
    parser = make_parser("bench", "Latency of TVM (tuned, untuned), ONNX Runtime, OpenVINO, ncnn and "
                         "PyTorch on this machine: each engine in its own process, alternating, "
                         "same input and threads; medians, ratios to the fastest of ONNX Runtime "
                         "and OpenVINO, and MAC throughput against the machine's compute bound.")
    from compile.bench.engines import BASELINES, ENGINES
    from compile.model.zoo import MODELS

    parser.add_argument("--model", default="xs", type=str.lower, choices=list(MODELS))
    add_input_size_arg(parser)
    parser.add_argument("--threads", type=positive_int, nargs="+", default=[2],
                        help="thread counts, each engine timed at every one (default 2)")
    parser.add_argument("--repeats", type=positive_int, default=30,
                        help="timed runs per engine, split over the rounds (default 30)")
    parser.add_argument("--rounds", type=positive_int, default=3, help="alternation rounds")
    parser.add_argument("--workdir", type=Path, default=Path("build/bench"))
    parser.add_argument("--engines", nargs="+", default=list(ENGINES), choices=ENGINES,
                        metavar="ENGINE", help="engines to time, in this order (default: all of "
                        f"{' '.join(ENGINES)}); at least one of {' '.join(BASELINES)}")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    from compile.bench.engines import BenchArgs, banner, plot, run, table
    from compile.model.info import model_stats
    from compile.model.zoo import get_dataset, get_model

    try:
        bargs = BenchArgs(model=args.model, input_size=args.input_size,
                          threads=tuple(args.threads), repeats=args.repeats, rounds=args.rounds,
                          workdir=args.workdir, engines=tuple(args.engines))
        results, meta = run(bargs)
    except ValueError as err:
        return fail(str(err))
    h, w = meta.input_hw
    macs = model_stats(get_model(args.model), get_dataset("crowdpose"), (h, w)).true_macs
    for threads, times in results.items():
        print(banner(meta, threads))
        print(table(times, macs, threads))
    out = plot(results, args.workdir / f"bench-{meta.model}-{h}x{w}.png",
               f"LitePose-{meta.model.upper()} {h}x{w}, threads {' '.join(map(str, results))}")
    print(f"plot {out}")
    return 0
