"""MetaSchedule tuning databases under ``tuning_logs/<target>/<model>-<H>x<W>/``.

The files are MetaSchedule's JSON database format (``database_workload.json`` and
``database_tuning_record.json``, one JSON value per line), so TVM's own ``JSONDatabase`` reads
them too. ``TuningDatabase`` adds what a long-running tuner on shared machines needs: every
record is appended and flushed as it is measured (a killed run keeps all finished records and
resumes), and a corrupt or truncated line is reported and skipped instead of failing the load.
"""

from __future__ import annotations

import json
import logging
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from tvm.ir.utils import derived_object
from tvm.s_tir import meta_schedule as ms
from tvm.s_tir.meta_schedule.database import PyDatabase
from tvm_ffi import structural_hash

from compile import REPO_ROOT

logger = logging.getLogger(__name__)

WORKLOADS = "database_workload.json"
RECORDS = "database_tuning_record.json"
TUNING_LOGS = REPO_ROOT / "tuning_logs"  # the committed databases
# {"graph": <compile.passes.pipeline.GRAPH_VERSION it is tuned on>, "carried_from": [older ones]}
GRAPH = "graph.json"


def graph_version(db_dir: str | Path) -> str | None:
    """The graph version a database was tuned on (``None``: not recorded, i.e. older)."""
    path = Path(db_dir) / GRAPH
    try:
        return str(json.loads(path.read_text())["graph"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def carry_over(db_dir: str | Path, graph: str) -> list[str]:
    """Claim a database of an older graph for ``graph``; returns the graphs it was carried from.

    A record is the schedule of one exact kernel (its workload), and a build applies a record
    only to a task whose workload is identical: the kernels that both graphs share keep their
    records, the others' records stay in the files, append-only, and are never applied. Only
    ``graph.json`` is rewritten (atomically): it names ``graph`` and, in ``carried_from``, the
    graphs before it. The tasks the new graph adds are what the next tuning run measures.
    """
    from runtime.atomic import write_json_atomic

    path = Path(db_dir) / GRAPH
    found = graph_version(db_dir)
    if found == graph:
        raise ValueError(f"tuning database {db_dir} is already tuned on graph {graph!r}: "
                         "nothing to carry over (drop --carry-over)")
    try:
        earlier = list(json.loads(path.read_text()).get("carried_from", []))
    except (OSError, ValueError, AttributeError):
        earlier = []
    carried = [found or "unrecorded", *earlier]
    write_json_atomic(path, {"graph": graph, "carried_from": carried}, indent=2)
    logger.info("tuning database %s carried over from graph %s to %s", db_dir, carried[0], graph)
    return carried


@dataclass
class LoadReport:
    """What loading a database found."""

    workloads: int = 0
    records: int = 0
    skipped: list[str] = field(default_factory=list)  # "file:line: reason"


def _lines(path: Path):
    if not path.is_file():
        return
    with path.open() as fh:
        for number, line in enumerate(fh, start=1):
            if line.strip():
                yield number, line


def _skipped(path: Path, number: int, reason: str) -> str:
    """Report a corrupt database line that a load skips; its ``file:line: reason``."""
    entry = f"{path}:{number}: {reason}"
    logger.warning("skipping a corrupt tuning-database line %s", entry)
    return entry


def _plain(obj):
    """TVM JSON-style values as plain Python, index maps as their ``save_json`` string: what
    TVM's own JSONDatabase writes (``TuningRecord.as_json`` rejects the index maps that
    layout-rewriting schedules carry)."""
    from tvm.ir import save_json
    from tvm.tirx import FloatImm, IntImm
    from tvm.tirx.function import IndexMap
    from tvm_ffi import Array, Map

    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    if isinstance(obj, IntImm | FloatImm):
        return obj.value
    if isinstance(obj, Array | list | tuple):
        return [_plain(i) for i in obj]
    if isinstance(obj, Map | dict):
        return {_plain(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, IndexMap):
        return save_json(obj)
    raise TypeError(f"cannot write {type(obj).__name__} into a tuning record")


def record_json(record) -> list:
    """A tuning record as the JSON value of its database line."""
    from tvm.s_tir.meta_schedule import _ffi_api

    return _plain(_ffi_api.TuningRecordAsJSON(record))


def target_machine(target) -> str:
    """The machine a target (a ``tvm.target.Target`` or its JSON dict) names, ``<LLVM
    mcpu>/<model>`` (``znver4/amd-epyc-2c-2t``, ``cortex-a72/rk3399``); a tuning record's target
    says where it was measured."""
    attrs = target if isinstance(target, dict) else target.attrs
    return f"{attrs.get('mcpu', '')}/{attrs.get('model', '')}"


def mean_seconds(record) -> float:
    """A record's mean measured run time in seconds (inf when it has none)."""
    secs = [float(s) for s in record.run_secs or ()]
    return statistics.fmean(secs) if secs else math.inf


def kinship(machine: str, other: str) -> int:
    """2: the same machine, 1: the same CPU (mcpu) on another or an unnamed machine, 0: other."""
    return 2 if machine == other else int(machine.split("/")[0] == other.split("/")[0])


@derived_object
class TuningDatabase(PyDatabase):
    """An append-only, crash-tolerant MetaSchedule database backed by the two JSON files."""

    def __init__(self, db_dir: str | Path, writable: bool = True, graph: str | None = None,
                 machine: str | None = None, carry_over: bool = False):
        """``graph``: claim the database for this graph version (writable only); ``machine``:
        load only the records measured there (:func:`target_machine`), as a tuner on it needs:
        another machine's run times would pass for this one's bests; ``carry_over``: claim a
        database of another graph for ``graph`` (:func:`carry_over`)."""
        super().__init__()
        self.carry_over = carry_over
        self.db_dir = Path(db_dir)
        self.writable = writable
        self.machine = machine
        self.inner = ms.database.MemoryDatabase()
        self.workloads: list[tuple[ms.database.Workload, int]] = []
        self.report = LoadReport()
        if writable and graph is not None:
            self._claim(graph)
        self._load()

    def _claim(self, graph: str) -> None:
        """Refuse to append to records of another graph; record ``graph`` in a new database."""
        found = graph_version(self.db_dir)
        has_records = (self.db_dir / RECORDS).is_file() and (self.db_dir / RECORDS).stat().st_size
        if has_records and self.carry_over:
            carry_over(self.db_dir, graph)  # refuses a database already on ``graph``
            return
        if found == graph:
            return
        if has_records:
            raise ValueError(f"tuning database {self.db_dir} holds records of graph "
                             f"{found or 'unrecorded (an older kit)'}, not {graph!r}: tune with "
                             "--carry-over to keep the records of the kernels both graphs share, "
                             "or move it aside (or delete it) to tune from scratch")
        from runtime.atomic import write_json_atomic

        self.db_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.db_dir / GRAPH, {"graph": graph}, indent=2)

    def _skip(self, path: Path, number: int, reason: str) -> None:
        self.report.skipped.append(_skipped(path, number, reason))

    def _load(self) -> None:
        by_index: dict[int, ms.database.Workload] = {}
        wl_path, rec_path = self.db_dir / WORKLOADS, self.db_dir / RECORDS
        self._next_index = 0
        self.elsewhere = []  # records measured on other machines (``machine`` given)
        for number, line in _lines(wl_path):
            index = self._next_index  # a corrupt line still takes its index
            self._next_index += 1
            try:
                workload = self.inner.commit_workload(ms.database.Workload.from_json(json.loads(line)).mod)
            except Exception as err:  # malformed JSON or IR: TVM raises its own errors
                self._skip(wl_path, number, f"{type(err).__name__}: {str(err)[:80]}")
                continue
            by_index[index] = workload
            self.workloads.append((workload, index))
        self.report.workloads = len(by_index)
        for number, line in _lines(rec_path):
            try:
                index, record_json = json.loads(line)
                workload = by_index[index]
                record = ms.database.TuningRecord.from_json(record_json, workload)
            except KeyError:
                self._skip(rec_path, number, "refers to a workload line that is missing or corrupt")
                continue
            except Exception as err:
                self._skip(rec_path, number, f"{type(err).__name__}: {str(err)[:80]}")
                continue
            if self.machine is not None and target_machine(record.target) != self.machine:
                self.elsewhere.append(record)
                continue
            self.inner.commit_tuning_record(record)
            self.report.records += 1

    def _append(self, name: str, value) -> None:
        if not self.writable:
            raise RuntimeError(f"tuning database {self.db_dir} was opened read-only")
        self.db_dir.mkdir(parents=True, exist_ok=True)
        path = self.db_dir / name
        with path.open("a+b") as fh:  # a line cut off by a kill must not swallow the next one
            fh.seek(0, 2)
            if fh.tell():
                fh.seek(-1, 2)
                if fh.read(1) != b"\n":
                    fh.write(b"\n")
            fh.write(json.dumps(value, separators=(",", ":")).encode() + b"\n")
            fh.flush()

    def _index_of(self, workload) -> int:
        for known, index in self.workloads:
            if known.same_as(workload):
                return index
        raise KeyError("workload was not committed to this database")

    def has_workload(self, mod) -> bool:
        return self.inner.has_workload(mod)

    def commit_workload(self, mod):
        if self.inner.has_workload(mod):
            return self.inner.commit_workload(mod)
        workload = self.inner.commit_workload(mod)
        self._append(WORKLOADS, workload.as_json())
        self.workloads.append((workload, self._next_index))
        self._next_index += 1
        return workload

    def commit_tuning_record(self, record) -> None:
        self.inner.commit_tuning_record(record)
        self._append(RECORDS, [self._index_of(record.workload), record_json(record)])

    def get_top_k(self, workload, top_k: int):
        return self.inner.get_top_k(workload, top_k)

    def get_all_tuning_records(self):
        return self.inner.get_all_tuning_records()

    def query_tuning_record(self, mod, target, workload_name):
        return self.inner.query_tuning_record(mod, target, workload_name)

    def query_schedule(self, mod, target, workload_name):
        return self.inner.query_schedule(mod, target, workload_name)

    def query_ir_module(self, mod, target, workload_name):
        return self.inner.query_ir_module(mod, target, workload_name)

    def __len__(self) -> int:
        return len(self.inner)


FAILED_SECONDS = 1e9  # MetaSchedule puts 1e10 s where a build or run failed


@dataclass(frozen=True)
class LineRecord:
    """A measured record as its database line holds it, its trace not yet parsed by TVM."""

    machine: str  # :func:`target_machine` of the record's target
    seconds: float  # mean measured run time
    value: list  # the record's JSON value: [trace, run_secs, target, args_info]
    mod: object  # its workload's IRModule
    line: str  # "<file>:<line number>", for a report


def scan_measured(db_dir: str | Path, wanted: set[int] | None = None) -> dict[int, list[LineRecord]]:
    """One database's measured records per workload ``structural_hash``, read-only.

    A record line is parsed only when its workload is in ``wanted`` (every workload when
    ``None``), and TVM parses no trace: a build needs the best record of a few dozen workloads,
    not the tens of thousands of traces a long tuning run leaves (loading them all with
    :class:`TuningDatabase` took minutes). Corrupt lines are reported and skipped, as there.
    """
    db_dir = Path(db_dir)
    wl_path, rec_path = db_dir / WORKLOADS, db_dir / RECORDS
    workloads: dict[int, tuple[int, object]] = {}  # line index -> (structural hash, IRModule)
    for index, (number, line) in enumerate(_lines(wl_path)):  # a corrupt line keeps its index
        try:
            mod = ms.database.Workload.from_json(json.loads(line)).mod
        except Exception as err:  # malformed JSON or IR: TVM raises its own errors
            _skipped(wl_path, number, f"{type(err).__name__}: {str(err)[:80]}")
            continue
        workloads[index] = (structural_hash(mod), mod)
    found: dict[int, list[LineRecord]] = {}
    for number, line in _lines(rec_path):
        try:
            index = int(line[1:line.index(",")])  # each line is [workload index, record]
            key, mod = workloads[index]
            if wanted is not None and key not in wanted:
                continue
            value = json.loads(line)[1]
            secs = [float(s) for s in value[1] or ()]
            machine = target_machine(value[2])
        except KeyError:
            _skipped(rec_path, number, "refers to a workload line that is missing or corrupt")
            continue
        except Exception as err:
            _skipped(rec_path, number, f"{type(err).__name__}: {str(err)[:80]}")
            continue
        if secs and max(secs) < FAILED_SECONDS:
            found.setdefault(key, []).append(
                LineRecord(machine, statistics.fmean(secs), value, mod, f"{rec_path}:{number}"))
    return found


def has_record(db, mod) -> bool:
    """Whether ``db`` holds a measured record for ``mod``'s workload (commits nothing new)."""
    return db.has_workload(mod) and bool(db.get_top_k(db.commit_workload(mod), 1))


def database_dir(tuning_logs: Path, target: str, model: str, size: tuple[int, int]) -> Path:
    """``tuning_logs/<target>/<model>-<H>x<W>/``."""
    return Path(tuning_logs) / target / f"{model}-{size[0]}x{size[1]}"
