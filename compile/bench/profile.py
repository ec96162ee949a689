"""Each kernel of an artifact against this machine's FMA peak and against its own tuning record.

``runtime/profile.py`` times every kernel inside the network (in a process of its own, like
every engine of ``make bench``); this joins each kernel with the FLOPs MetaSchedule counts for
its task, the measured FMA peak at the same thread count, and the best time the tuning
database holds for it on this machine, timed alone. Two columns say where a frame's time goes:
``lost`` (ms per frame above what the FLOPs take at the peak) and ``net/alone`` (how much slower
the kernel runs in the network than the tuner timed it: above ~1.3 its data comes from memory,
not from a cache the tuner kept warm). ``tune --tasks`` then searches the kernels that lose most.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from compile import REPO_ROOT

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TaskFacts:
    """What the tuner knows of one task of the network."""

    flop: float  # per call, as MetaSchedule counts them
    calls: int  # per frame (the task's weight)
    alone: float | None  # best seconds per call in the databases, this machine (None: none)


@dataclass(frozen=True)
class KernelRow:
    """One kernel: per-frame time in the network, its task's FLOPs and best time alone."""

    name: str
    calls: int
    seconds: float  # per frame, all calls
    flop: float | None  # per call (None: not a tuning task: VM builtins, scheduled kernels)
    alone: float | None  # best seconds per call in the database, this machine (None: none)

    def lost(self, peak_flops: float) -> float:
        """Seconds per frame above the FLOPs' time at ``peak_flops`` (all of it without FLOPs)."""
        return self.seconds - (self.flop or 0.0) * self.calls / peak_flops

    @property
    def slowdown(self) -> float | None:
        """In-network time per call over the time alone."""
        return self.seconds / self.calls / self.alone if self.alone and self.calls else None


def runtime_profile(artifact: Path, threads: int, runs: int) -> dict:
    """``runtime/profile.py --json`` on ``artifact`` in a fresh interpreter."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "profile.json"
        cmd = [sys.executable, str(REPO_ROOT / "runtime" / "profile.py"), "--model", str(artifact),
               "--threads", str(threads), "--runs", str(runs), "--json", str(out)]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            last = ((res.stderr or res.stdout).strip().splitlines() or ["no output"])[-1]
            raise ValueError(f"runtime/profile.py failed on {artifact}: {last}")
        return json.loads(out.read_text())


def task_facts(meta) -> dict[str, TaskFacts]:
    """Task name -> its :class:`TaskFacts`, for the network of the artifact ``meta`` describes
    (a :class:`runtime.meta.ArtifactMeta`), from the databases its build applied."""
    from tvm_ffi import structural_hash

    from compile.tuning.database import scan_measured, target_machine
    from compile.tuning.tune import TuneArgs, _extract_tasks, _flop, resolve

    h, w = meta.input_hw
    args = TuneArgs(model=meta.model, target=meta.target.name, input_size=f"{h}x{w}",
                    dataset=meta.dataset, functions="network")
    spec, dataset, preset, size, _, _ = resolve(args)
    target = preset.tvm_target()
    with tempfile.TemporaryDirectory() as tmp:
        tasks = _extract_tasks(args, spec, dataset, size, target, Path(tmp))
    keys = {structural_hash(t.dispatched[0]): str(t.task_name) for t in tasks}
    machine = target_machine(target)
    best: dict[str, float] = {}
    for ref in meta.tuning.databases if meta.tuning else ():
        for key, records in scan_measured(REPO_ROOT / ref.path, set(keys)).items():
            here = [r.seconds for r in records if r.machine == machine]
            if here:
                best[keys[key]] = min(*here, best.get(keys[key], float("inf")))
    return {str(t.task_name): TaskFacts(_flop(t), int(t.weight), best.get(str(t.task_name)))
            for t in tasks}


def kernel_rows(profile: dict, facts: dict[str, TaskFacts]) -> list[KernelRow]:
    """The profile's kernels (``runtime.profile.Profile.to_json``) joined with their tasks."""
    from runtime.profile import KernelTime

    rows = []
    for k in profile["kernels"]:
        fact = facts.get(KernelTime(**k).task)
        rows.append(KernelRow(k["name"], k["calls"], k["seconds"],
                              (fact.flop or None) if fact else None, fact.alone if fact else None))
    return rows


def report(rows: list[KernelRow], profile: dict, peak: float, how: str, top: int,
           tuned_threads: int) -> str:
    """The kernels that lose most against the peak (``peak``: GMAC/s), then the totals; the
    times alone (measured on ``tuned_threads`` threads) only beside a profile on as many."""
    from runtime.profile import BUILTINS_ROW

    flops = 2e9 * peak
    builtin = [r for r in rows if r.name == BUILTINS_ROW]
    if profile["threads"] != tuned_threads:
        rows = [dataclasses.replace(r, alone=None) for r in rows]
    rows = sorted((r for r in rows if r not in builtin), key=lambda r: -r.lost(flops))
    width = max((len(r.name) for r in rows[:top]), default=6)
    lines = [f"{'kernel':{width}s} {'calls':>5s} {'ms/frame':>8s} {'GFLOP/s':>8s} {'% peak':>6s} "
             f"{'lost ms':>7s} {'alone us':>8s} {'net/alone':>9s}"]
    for r in rows[:top]:
        rate = r.flop * r.calls / r.seconds / 1e9 if r.flop and r.seconds else None
        lines.append(
            f"{r.name:{width}s} {r.calls:5d} {r.seconds * 1e3:8.3f} "
            f"{f'{rate:.1f}' if rate else '-':>8s} {f'{100 * rate * 1e9 / flops:.0f}' if rate else '-':>6s} "
            f"{r.lost(flops) * 1e3:7.3f} {f'{r.alone * 1e6:.1f}' if r.alone else '-':>8s} "
            f"{f'{r.slowdown:.2f}' if r.slowdown else '-':>9s}")
    total_flop = sum((r.flop or 0.0) * r.calls for r in rows)
    lines.append(f"frame {profile['frame'] * 1e3:.3f} ms at {profile['threads']} thread(s) without "
                 f"the hook; kernels {sum(r.seconds for r in rows) * 1e3:.3f} ms with it, "
                 f"{sum(r.lost(flops) for r in rows) * 1e3:.3f} ms of that above the peak; "
                 f"{total_flop / 1e9:.3f} GFLOP a frame = {total_flop / flops * 1e3:.3f} ms at the peak")
    for r in builtin:
        lines.append(f"VM builtins (allocations, tuples): {r.calls} calls, {r.seconds * 1e3:.3f} ms "
                     "with the hook, mostly the hook's own cost (about a microsecond a call)")
    lines.append(f"FMA peak {peak:.0f} GMAC/s ({how}); 'alone': the tuning database's best on "
                 f"this machine, the kernel timed by itself on {tuned_threads} thread(s)")
    return "\n".join(lines)
