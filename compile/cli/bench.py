"""``python -m compile bench``: TVM tuned/untuned vs ONNX Runtime vs PyTorch, side by side."""

from __future__ import annotations

from pathlib import Path

from compile.cli import fail, make_parser, setup_logging


def main(argv: list[str]) -> int:
    parser = make_parser("bench", "Latency of TVM (tuned, untuned), ONNX Runtime, OpenVINO, ncnn and "
                         "PyTorch on this machine: each engine in its own process, alternating, "
                         "same input and threads; medians, ratios to the fastest of ONNX Runtime "
                         "and OpenVINO, and MAC throughput against the machine's compute bound.")
    from compile.models import MODELS

    parser.add_argument("--model", default="xs", type=str.lower, choices=list(MODELS))
    parser.add_argument("--input-size", metavar="HxW", default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=30, help="timed runs per engine (>= 30)")
    parser.add_argument("--rounds", type=int, default=3, help="alternation rounds")
    parser.add_argument("--workdir", type=Path, default=Path("build/bench"))
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    from compile.bench import BenchArgs, plot, run, table
    from compile.info import model_stats
    from compile.models import get_dataset, get_model

    bargs = BenchArgs(model=args.model, input_size=args.input_size, threads=args.threads,
                      repeats=args.repeats, rounds=args.rounds, workdir=args.workdir)
    if args.repeats < 1 or args.rounds < 1:
        return fail(f"--repeats and --rounds must be >= 1 (got {args.repeats}, {args.rounds})")
    try:
        times, meta = run(bargs)
    except ValueError as err:
        return fail(str(err))
    tuning = meta["tuning"]
    covered = "untuned" if tuning == "untuned" else \
        f"{sum(d['tasks_covered'] for d in tuning['databases'][:1])}/{tuning['tasks']} tasks tuned"
    h, w = meta["input"]["shape"][2:]
    print(f"LitePose-{meta['model'].upper()} {h}x{w}, {args.threads} threads, host; "
          f"tvm-tuned: {covered}; seeded random weights (latency does not depend on them)")
    size = (h, w)
    macs = model_stats(get_model(args.model), get_dataset("crowdpose"), size).true_macs
    print(table(times, macs, args.threads))
    out = plot(times, args.workdir / f"bench-{meta['model']}-{h}x{w}.png",
               f"LitePose-{meta['model'].upper()} {h}x{w}, {args.threads} threads")
    print(f"plot {out}")
    return 0
