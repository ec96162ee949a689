"""``python -m compile build``: compile a LitePose variant into ``model.so`` + ``metadata.json``."""

from __future__ import annotations

import logging
from pathlib import Path

from . import add_model_args, add_target_arg, fail, make_parser, setup_logging

logger = logging.getLogger(__name__)


def main(argv: list[str]) -> int:
    parser = make_parser("build", "Import LitePose into Relax, compile it for a target (applying "
                         "a tuning database from tuning_logs/ when there is one) and write the "
                         "shared library with its metadata.")
    add_model_args(parser)
    add_target_arg(parser)
    parser.add_argument("--output", required=True, type=Path, help="artifact folder to write")
    parser.add_argument("--frontend", choices=["torch", "onnx"], default="torch",
                        help="import through torch.export (default) or ONNX")
    from compile.targets import TARGETS

    parser.add_argument("--schedules-from", choices=list(TARGETS), default=None,
                        help="apply this CPU target's tuning databases (default: the target's own, "
                        "else host's for an ARM target without any)")
    parser.add_argument("--tuning-logs", type=Path, default=None,
                        help="database root (default: the kit's tuning_logs/)")
    parser.add_argument("--no-transfer", action="store_true",
                        help="never apply another target's schedules: untuned unless the target "
                        "has databases of its own")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    from compile.build import BuildArgs, build
    from compile.model.weights import RANDOM_WEIGHTS_WARNING

    bargs = BuildArgs(
        model=args.model, target=args.target, output=args.output, dataset=args.dataset,
        checkpoint=Path(args.checkpoint) if args.checkpoint else None,
        input_size=args.input_size, frontend=args.frontend, seed=args.seed,
        schedules_from=args.schedules_from, transfer=not args.no_transfer,
        **({"tuning_logs": args.tuning_logs} if args.tuning_logs else {}),
    )
    print(f"build:\n{bargs.display()}")
    try:
        result = build(bargs)
    except ValueError as err:
        return fail(str(err))
    meta = result.meta
    if meta.weights.random:
        print(f"WARNING: {RANDOM_WEIGHTS_WARNING}")
    tuning = meta.tuning
    print(f"library   {result.library} ({meta.target.arch}, "
          f"{result.library.stat().st_size / 1e6:.1f} MB)")
    print(f"metadata  {result.library.parent / 'metadata.json'}")
    if tuning is None:
        print("tuning    untuned (no database in tuning_logs/ covers a task of this build)")
    elif tuning.transferred:
        print(f"tuning    schedules TRANSFERRED from {tuning.schedules_from} (tuned there, not "
              f"on {meta.target.name}): re-tune on the board for its own")
    for db in () if tuning is None else tuning.databases:
        print(f"tuning    {db.path}: {db.tasks_covered}/{tuning.tasks} tasks")
    if tuning is not None and tuning.tasks_elsewhere and not tuning.transferred:
        print(f"tuning    {tuning.tasks_elsewhere}/{tuning.tasks} tasks use records measured "
              f"only on other machines than this {tuning.machine}: 'make tune' here measures "
              "them on it")
    for db in result.stale:
        print(f"tuning    STALE {db}: tuned on another graph version, not applied (re-tune)")
    print("timings   " + ", ".join(f"{k} {v:.1f} s" for k, v in result.timings.items()))
    return 0
