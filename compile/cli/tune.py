"""``python -m compile tune``: MetaSchedule tuning, locally or on boards behind an RPC tracker."""

from __future__ import annotations

from pathlib import Path

from . import (
    add_input_size_arg,
    add_target_arg,
    add_tracker_args,
    fail,
    make_parser,
    non_negative_int,
    positive_float,
    positive_int,
    setup_logging,
)


def main(argv: list[str]) -> int:
    parser = make_parser("tune", "Tune LitePose with MetaSchedule (XGBoost cost model). Records are "
                         "appended to tuning_logs/<target>/<model>-<H>x<W>/ as they are measured; "
                         "a re-run resumes from them. Boards come from an RPC tracker: --tracker/"
                         "--key, else TVM_TRACKER_HOST/PORT/KEY, else the virtual board's at "
                         "127.0.0.1:9190 ('make board'); 'host' tunes on this machine.")
    from compile.model.zoo import DATASETS, MODELS

    parser.add_argument("--model", required=True, type=str.lower, choices=list(MODELS))
    parser.add_argument("--dataset", default="crowdpose", type=str.lower, choices=list(DATASETS))
    add_target_arg(parser)
    add_input_size_arg(parser)
    parser.add_argument("--trials", type=positive_int, default=64,
                        help="new measurements in this run")
    parser.add_argument("--minutes", type=positive_float, default=None,
                        help="time budget: start no batch after this many minutes from the "
                        "start (the batches in flight finish and are kept; the summary says "
                        "where it stopped); whichever of --trials and --minutes ends first")
    parser.add_argument("--trials-per-task", type=positive_int, default=None)
    parser.add_argument("--trials-per-batch", type=positive_int, default=32)
    parser.add_argument("--first-pass", type=non_negative_int, default=8, metavar="N",
                        help="trials of the first batch of each task the database has not "
                        "measured, before the gradient search spends the rest in full batches "
                        "(default 8; 0: full first batches, MetaSchedule's way)")
    add_tracker_args(parser)
    parser.add_argument("--parallel", type=positive_int, default=None,
                        help="candidates measured at once on boards of the key (default: the "
                        "free boards the tracker reports, at least 1); more than the boards "
                        "wait for a free one")
    parser.add_argument("--build-workers", type=positive_int, default=None,
                        help="candidate builds at once (default: this machine's cores)")
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="seconds per candidate run (RPC session timeout on boards)")
    parser.add_argument("--tuning-logs", type=Path, default=None, help="database root (default: "
                        "tuning_logs/ of the checkout)")
    parser.add_argument("--remeasure", type=non_negative_int, default=8, metavar="K",
                        help="before searching, measure here the K fastest schedules other "
                        "machines recorded for each task this machine has no record of "
                        "(default 8; 0: start those tasks from scratch)")
    parser.add_argument("--functions", default="all", choices=["all", "network", "merge"],
                        help="which functions' tasks to tune: the network (main), the merge of "
                        "its heads (compile/frontend/merge.py), or both (default)")
    parser.add_argument("--tasks", nargs="+", default=(), metavar="NAME",
                        help="search only the tasks whose names contain one of these (e.g. "
                        "conv2d4_ conv2d20_: the kernels 'python -m compile profile' shows "
                        "losing most against the FMA peak); the others keep their records and "
                        "still count in the estimate")
    parser.add_argument("--carry-over", action="store_true",
                        help="the database was tuned on an older graph: keep its records (those "
                        "of kernels both graphs share apply again, the rest stay in the files "
                        "unused), record the current graph in its graph.json, and tune")
    parser.add_argument("--replot", action="store_true",
                        help="measure nothing: rebuild tuning-curve.png/.json from every record "
                        "this machine put in the database, in the order measured (runs that "
                        "were resumed or killed included), say when it got within 10 %%, and "
                        "print the per-task table of this machine's records")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    from compile.tuning.database import TUNING_LOGS
    from compile.tuning.progress import summary_table
    from compile.tuning.tune import TuneArgs, replot, tune

    targs = TuneArgs(model=args.model, target=args.target, trials=args.trials,
                     trials_per_task=args.trials_per_task, minutes=args.minutes,
                     input_size=args.input_size,
                     dataset=args.dataset, tracker=args.tracker, key=args.key, timeout=args.timeout,
                     trials_per_batch=args.trials_per_batch, first_pass=args.first_pass,
                     parallel=args.parallel,
                     build_workers=args.build_workers, remeasure=args.remeasure,
                     functions=args.functions, tasks=tuple(args.tasks),
                     carry_over=args.carry_over,
                     tuning_logs=args.tuning_logs or TUNING_LOGS,
                     progress=not args.quiet)
    if args.replot:
        try:
            result = replot(targs)
        except ValueError as err:
            return fail(str(err))
        print(summary_table(result, throughput=False))  # this machine's records per task
        history = result.history
        at, end = result.converged_at(), next((s for _, s in reversed(history)), None)
        print(f"curve     {len(history)} records; estimate {end * 1e3:.2f} ms at the end; "
              f"within 10 % from trial {at}" if at is not None
              else f"curve     {len(history)} records; some task has none yet: no estimate")
        print(f"plot      {result.plot or 'none'}")
        return 0
    print(f"tune:\n{targs.display()}")
    try:
        result = tune(targs)
    except ValueError as err:
        return fail(str(err))
    for line in result.skipped_lines:
        print(f"warning: skipped corrupt database line {line}")
    print(summary_table(result))
    if result.out_of_time:
        print(f"stopped   the {args.minutes:g}-minute budget ended: "
              f"{sum(t.trials for t in result.tasks)} of {args.trials} trials measured")
    if result.remeasured:
        print(f"seeded    {result.remeasured} schedules of other machines measured here first")
    print(f"database  {result.db_dir}: {result.records_before} -> {result.records_after} records")
    print(f"plot      {result.plot or 'none (some tasks have no measurement yet)'}")
    print(f"time      {result.seconds:.0f} s")
    return 0
