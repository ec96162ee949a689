"""``python -m compile profile``: each kernel of an artifact against the FMA peak and its tuning."""

from __future__ import annotations

import json
from pathlib import Path

from compile.cli import fail, make_parser, positive_int, setup_logging


def main(argv: list[str]) -> int:
    parser = make_parser("profile", "Time each kernel of a host artifact inside its network "
                         "(runtime/profile.py, in a process of its own) and set it against the "
                         "FLOPs of its task at this machine's measured FMA peak and against the "
                         "tuning database's best time for it, timed alone. The kernels that lose "
                         "most come first: 'tune --tasks' searches them. On a board, run "
                         "runtime/profile.py itself.")
    parser.add_argument("--artifact", required=True, type=Path, help="artifact folder (built "
                        "for this machine: 'python -m compile build --target host')")
    parser.add_argument("--threads", type=positive_int, nargs="+", default=[2],
                        help="thread counts, a profile at each (default 2)")
    parser.add_argument("--runs", type=positive_int, default=20, help="frames timed per profile")
    parser.add_argument("--top", type=positive_int, default=25, help="kernels shown")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    from compile.bench.engines import measured_fma_peak
    from compile.bench.profile import kernel_rows, report, runtime_profile, task_facts
    from runtime.meta import ArtifactMeta

    try:
        meta = ArtifactMeta.read(args.artifact)
        # first the profiles: runtime/profile.py refuses an artifact built for another machine
        profiles = {n: runtime_profile(args.artifact, n, args.runs) for n in args.threads}
        facts = task_facts(meta)
        print(meta.describe())
        tuned_threads = int(json.loads(meta.target.tvm).get("num-cores", 0))  # tune's runner
        for threads, profile in profiles.items():
            peak, how = measured_fma_peak(threads)
            print(report(kernel_rows(profile, facts), profile, peak, how, args.top, tuned_threads))
    except ValueError as err:  # MetadataError included
        return fail(str(err))
    if meta.weights.source == "random":
        print("random weights: kernel times do not depend on them")
    return 0
