"""Where the stages run: CPU clusters of big.LITTLE boards, and per-thread affinity.

On an RK3399 the network runs on the two Cortex-A72 (``--cores big``) while decoding, grouping
and writing run on the four Cortex-A53. Clusters come from
``/sys/devices/system/cpu/cpu*/cpu_capacity`` (else ``cpufreq/cpuinfo_max_freq``); on a machine
whose cores are all alike, inference gets ``--threads`` cores and the other stages the rest.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

SYS_CPU = Path("/sys/devices/system/cpu")


def cpu_clusters(sys_cpu: Path = SYS_CPU, allowed: set[int] | None = None) -> list[list[int]]:
    """CPUs grouped by capacity (or maximum frequency), fastest group first.

    One group when nothing tells the cores apart. ``allowed`` defaults to this process's
    affinity.
    """
    allowed = set(os.sched_getaffinity(0)) if allowed is None else set(allowed)
    rank: dict[int, int] = {}
    for cpu in sorted(allowed):
        for name in ("cpu_capacity", "cpufreq/cpuinfo_max_freq"):
            try:
                rank[cpu] = int((sys_cpu / f"cpu{cpu}" / name).read_text().split()[0])
                break
            except (OSError, ValueError, IndexError):
                continue
    if len(rank) != len(allowed) or len(set(rank.values())) < 2:
        return [sorted(allowed)]
    groups: dict[int, list[int]] = {}
    for cpu, value in rank.items():
        groups.setdefault(value, []).append(cpu)
    return [sorted(groups[v]) for v in sorted(groups, reverse=True)]


@dataclass(frozen=True)
class Placement:
    """CPU sets for the inference thread and for the other stages (empty: not pinned)."""

    infer: tuple[int, ...]
    other: tuple[int, ...]
    description: str

    @property
    def post_workers(self) -> int:
        """Default post-stage workers: one per core the other stages have to themselves (an
        RK3399's four A53 with ``--cores big``), at least one."""
        return max(1, len(self.other))


def plan(cores: str, threads: int, clusters: list[list[int]] | None = None) -> Placement:
    """Split the CPUs between inference and the other stages.

    cores : "default", "big" or "little" (where TVM's pool runs on a big.LITTLE board)
    threads : TVM worker threads (0: the runtime default, i.e. every core of its cluster)
    """
    clusters = cpu_clusters() if clusters is None else clusters
    every = sorted(c for group in clusters for c in group)
    if len(clusters) > 1 and cores in ("big", "little"):
        mine = clusters[0] if cores == "big" else clusters[-1]
        if threads:
            mine = mine[:threads]
        rest = [c for c in every if c not in mine]
        return Placement(tuple(mine), tuple(rest),
                         f"inference on the {cores} cluster (cpus {_list(mine)}), "
                         f"other stages on cpus {_list(rest)}")
    if threads and threads < len(every):
        return Placement(tuple(every[:threads]), tuple(every[threads:]),
                         f"inference on cpus {_list(every[:threads])}, other stages on cpus "
                         f"{_list(every[threads:])}")
    return Placement((), (), f"no pinning: inference uses {threads or 'all'} thread(s) of "
                     f"{len(every)} cpus shared with the other stages")


def _list(cpus) -> str:
    return ",".join(str(c) for c in cpus)


def pin_current_thread(cpus: tuple[int, ...]) -> None:
    """Pin the calling thread (Linux: pid 0 is the calling thread) to ``cpus``; () leaves it."""
    if not cpus or not hasattr(os, "sched_setaffinity"):
        return
    try:
        os.sched_setaffinity(0, cpus)
    except OSError as err:  # e.g. a container that forbids it: run unpinned
        logger.warning("cannot pin a thread to cpus %s: %s", _list(cpus), err)
