#!/usr/bin/env python3
"""Where an artifact's frame time goes: each kernel of the network, timed inside the network.

    python runtime/profile.py --model build/s-host --threads 2
    python runtime/profile.py --model build/s-host --json profile.json

TVM 0.27's Relax VM has no profiling mode in Python; its instrument hook is called before and
after every call the VM makes, so each kernel is timed between the two, in the network's order,
on the activations the network made (a tuner times a kernel alone, on data it keeps reusing).
The hook costs about a microsecond a call, so the frame is also timed without it; shares are
of the kernels' summed time (means per frame). Device side: no torch.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: the checkout, not runtime/, leads sys.path
    _here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _here]
    sys.path.insert(0, str(_here.parent))

import argparse
import logging
import statistics
import time
from collections import defaultdict
from dataclasses import asdict, dataclass

import numpy as np

from runtime import __version__

logger = logging.getLogger("runtime.profile")
BUILTIN = "vm.builtin."  # the VM's own calls (allocations, tuples): one row together
PREPACKED = "_prepacked"  # the suffix of kernels whose weights were laid out at build time
BUILTINS_ROW = "(VM builtins: allocations, tuples)"  # the row that sums the VM's own calls


@dataclass(frozen=True)
class KernelTime:
    """One kernel of the network: ``calls`` per frame, ``seconds`` per frame (all calls)."""

    name: str
    calls: int
    seconds: float

    @property
    def task(self) -> str:
        """The MetaSchedule task it was tuned as (its name without the build's suffix)."""
        return self.name.removesuffix(PREPACKED)


@dataclass(frozen=True)
class Profile:
    """Per-frame times of one artifact at one thread count (medians over ``runs`` frames)."""

    frame: float  # seconds, without the instrument
    instrumented: float  # seconds, with it
    kernels: tuple[KernelTime, ...]  # slowest first; the VM's builtins as one row
    threads: int
    runs: int

    @property
    def kernel_sum(self) -> float:
        return sum(k.seconds for k in self.kernels)

    def table(self, top: int | None = None) -> str:
        """The kernels, slowest first: calls, ms per frame, share of the summed time."""
        total = self.kernel_sum or 1.0
        width = max((len(k.name) for k in self.kernels[:top]), default=6)
        lines = [f"{'kernel':{width}s} {'calls':>5s} {'ms/frame':>9s} {'share':>6s} {'cum.':>6s}"]
        cum = 0.0
        for k in self.kernels[:top]:
            cum += k.seconds
            lines.append(f"{k.name:{width}s} {k.calls:5d} {k.seconds * 1e3:9.3f} "
                         f"{100 * k.seconds / total:5.1f}% {100 * cum / total:5.1f}%")
        if top is not None and len(self.kernels) > top:
            rest = self.kernels[top:]
            lines.append(f"{f'({len(rest)} more)':{width}s} {sum(k.calls for k in rest):5d} "
                         f"{sum(k.seconds for k in rest) * 1e3:9.3f} "
                         f"{100 * sum(k.seconds for k in rest) / total:5.1f}%")
        lines.append(f"frame {self.frame * 1e3:.3f} ms at {self.threads} thread(s) (median of "
                     f"{self.runs}); instrumented {self.instrumented * 1e3:.3f} ms, its kernels "
                     f"{self.kernel_sum * 1e3:.3f} ms")
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {**asdict(self), "kernels": [asdict(k) for k in self.kernels]}


def median_seconds(fn, runs: int) -> float:
    """The median of ``runs`` timed calls of ``fn()``, in seconds."""
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def profile_network(artifact, runs: int = 20, warmup: int = 3, threads: int = 0) -> Profile:
    """Time ``artifact``'s network (a :class:`runtime.artifact.Artifact`) frame by frame, then
    kernel by kernel through a second VM with the instrument hook, on one random image."""
    if runs < 1 or warmup < 0:
        raise ValueError(f"runs must be >= 1 and warmup >= 0, got runs={runs}, warmup={warmup}")
    image = np.random.default_rng(0).standard_normal(artifact.meta.input.shape).astype(np.float32)
    for _ in range(warmup):
        artifact.infer(image)
    frame = median_seconds(lambda: artifact.infer(image), runs)

    spent: dict[str, float] = defaultdict(float)
    calls: dict[str, int] = defaultdict(int)
    started = [0.0]

    def instrument(func, symbol, before, ret, *args) -> int:
        now = time.perf_counter()
        if before:
            started[0] = now
        else:
            spent[symbol] += now - started[0]
            calls[symbol] += 1
        return 0  # VMInstrumentReturnKind.NO_OP: run the call

    vm = artifact.new_vm()
    vm.set_instrument(instrument)
    tensor = artifact.device_tensor(image)
    network = vm[artifact.meta.network]
    for _ in range(warmup):
        network(tensor)
    spent.clear()
    calls.clear()
    instrumented = median_seconds(lambda: network(tensor), runs)
    kernels = [KernelTime(name, calls[name] // runs, spent[name] / runs)
               for name in spent if not name.startswith(BUILTIN)]
    builtins = [name for name in spent if name.startswith(BUILTIN)]
    if builtins:
        kernels.append(KernelTime(BUILTINS_ROW,
                                  sum(calls[n] for n in builtins) // runs,
                                  sum(spent[n] for n in builtins) / runs))
    kernels.sort(key=lambda k: -k.seconds)
    return Profile(frame, instrumented, tuple(kernels), threads, runs)


def main(argv: list[str] | None = None) -> int:
    from runtime.argtypes import non_negative_int, positive_int
    from runtime.artifact import CORE_MODES, Artifact, configure_threads
    from runtime.meta import MetadataError

    parser = argparse.ArgumentParser(prog="runtime/profile.py", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--model", required=True, type=Path, help="artifact folder")
    parser.add_argument("--threads", type=non_negative_int, default=0,
                        help="TVM worker threads (default 0: the runtime's choice)")
    parser.add_argument("--cores", default="default", choices=list(CORE_MODES))
    parser.add_argument("--runs", type=positive_int, default=20, help="frames timed (medians)")
    parser.add_argument("--top", type=positive_int, default=25, help="kernels shown (the rest summed)")
    parser.add_argument("--json", type=Path, default=None, help="also write the profile here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        configure_threads(args.threads, args.cores)
        artifact = Artifact(args.model)
        result = profile_network(artifact, args.runs, threads=args.threads)
    except (MetadataError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(artifact.meta.describe())
    if artifact.meta.weights.source == "random":
        print("random weights: the kernels' times do not depend on them")
    print(result.table(args.top))
    if args.json is not None:
        from runtime.atomic import write_json_atomic

        write_json_atomic(args.json, result.to_json(), indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
