"""``python -m compile deploy``: upload an artifact to a board over RPC, verify it and time it."""

from __future__ import annotations

from pathlib import Path

from compile.cli import (
    add_input_size_arg,
    add_target_arg,
    add_tracker_args,
    fail,
    make_parser,
    positive_int,
    setup_logging,
)


def main(argv: list[str]) -> int:
    parser = make_parser("deploy", "Request a board from an RPC tracker, upload the artifact, run "
                         "it on a fixed input, compare both outputs with PyTorch on this machine "
                         "and time it. Exit status 1 on mismatch.")
    from compile.model.zoo import MODELS

    parser.add_argument("--model", required=True, type=str.lower, choices=list(MODELS))
    add_target_arg(parser)
    parser.add_argument("--artifact", type=Path, default=None,
                        help="artifact folder (default build/<model>-<target>; built if missing)")
    add_input_size_arg(parser)
    add_tracker_args(parser)
    parser.add_argument("--repeat", type=positive_int, default=10, help="timed runs on the board")
    parser.add_argument("--session-timeout", type=positive_int, default=1800,
                        help="seconds a board session may last before the tracker ends it")
    parser.add_argument("--no-compare", action="store_true",
                        help="do not also time the untuned build of a tuned or transferred artifact")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    from compile.deploy import DeployArgs, deploy

    try:
        res = deploy(DeployArgs(model=args.model, target=args.target, artifact=args.artifact,
                                input_size=args.input_size, tracker=args.tracker, key=args.key,
                                repeat=args.repeat, session_timeout=args.session_timeout,
                                compare_untuned=not args.no_compare))
    except (ValueError, RuntimeError) as err:
        return fail(str(err))
    label = " (EMULATED under qemu: says nothing about a real board)" if res.emulated else ""
    if res.device == "opencl" and res.emulated:
        label = (" (PoCL, a CPU OpenCL implementation, EMULATED under qemu: checks the GPU code, "
                 "says nothing about Mali speed)")
    print(f"board       {res.board}{label}")
    w = res.weights
    print("weights     " + (f"SEEDED RANDOM (seed {w.seed}): this checks parity, not accuracy"
                             if w.random else f"checkpoint {w.path}"))
    print(f"max |err|   {res.max_abs_err:.3g} (tolerance {res.tolerance:.3g})")
    for function, err in (res.merge_errs or {}).items():
        print(f"{function:15s} max |err| {err:.3g} against the reference merge of PyTorch's outputs")
    print(f"schedules   {res.schedules}")
    print(f"latency     {res.latency_ms:.1f} ms median of {args.repeat}{label}")
    if res.untuned_ms is not None:
        emu = "EMULATED " if res.emulated else ""
        print(f"untuned     {res.untuned_ms:.1f} ms median of {args.repeat}, max |err| "
              f"{res.untuned_err:.3g}; {emu}speed-up of the {res.schedules.split()[0]} schedules: "
              f"{res.untuned_ms / res.latency_ms:.2f}x ({emu}latency ratio "
              f"{res.latency_ms / res.untuned_ms:.2f})")
    print(f"verdict     {'PASS' if res.passed else 'FAIL'}")
    return 0 if res.passed else 1
