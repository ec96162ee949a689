"""What each stage does to one frame (source: decode + pre-process; infer: the network, and the
heads' merge where the library runs it there; post: merge on the CPU, group, track, render,
write), and the serial run of them. A stage that fails is named by :class:`StageError`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from .pipeline import Inference, Pipeline, Prediction, StageStats
from .placement import Placement
from .preprocess import Letterbox
from .sources import Frame, Source

POLL = 0.1  # seconds between checks of the stop flag while blocked (a queue, a turn)


@dataclass
class Job:
    """One frame moving through the stages."""

    frame: Frame
    x: np.ndarray | None = None
    box: Letterbox | None = None
    inference: Inference | None = None


class StageError(RuntimeError):
    """A stage failed; ``stage`` names it and the original error is the cause."""

    def __init__(self, stage: str, err: BaseException):
        super().__init__(f"the {stage} stage failed: {type(err).__name__}: {err}")
        self.stage = stage


def interrupt_of(err: BaseException | None) -> KeyboardInterrupt | None:
    """The Ctrl-C (or SIGTERM) behind ``err``, if any: a signal that lands inside a Numba call
    surfaces as ``SystemError: CPUDispatcher(...) returned a result with an exception set``
    caused by the ``KeyboardInterrupt``."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, KeyboardInterrupt):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


class Turns:
    """Lets post workers run one step strictly in frame order: ``turn(n)`` waits until the
    steps of turns 0 .. n-1 are done (``None``: the caller is the only thread, no wait)."""

    def __init__(self, stop: threading.Event):
        self._next = 0
        self._cond = threading.Condition()
        self.stopping = stop

    @contextmanager
    def turn(self, n: int | None):
        if n is None:
            yield
            return
        with self._cond:
            while self._next != n:
                if self.stopping.is_set():
                    raise RuntimeError("stopped while waiting for the frames before it")
                self._cond.wait(POLL)
        try:
            yield
        finally:
            with self._cond:
                self._next = n + 1
                self._cond.notify_all()


class Sink(Protocol):
    """Where finished frames go (``runtime.writer.Writer``): ``render`` may run on several
    threads at once, ``emit`` runs on one, in frame order, and says whether to go on."""

    def render(self, frame: Frame, pred: Prediction | None) -> object: ...

    def emit(self, frame: Frame, rendered: object) -> bool: ...


class FrameSteps:
    """The work of each stage on one frame, and the serial run: ``source`` through ``pipeline``
    into ``sink``; ``stats`` collects the timings. :class:`runtime.stages.Runner` adds the
    pipelined run."""

    def __init__(self, pipeline: Pipeline, source: Source, sink: Sink, keep_raw: bool = False,
                 placement: Placement | None = None, setup_infer: Callable[[], None] | None = None,
                 post_workers: int = 1, setup_post: Callable[[], None] | None = None):
        if post_workers < 1:
            raise ValueError(f"post workers must be >= 1, got {post_workers}")
        self.pipeline, self.source, self.sink = pipeline, source, sink
        self.keep_raw = keep_raw
        self.post_workers = post_workers
        self.placement = placement or Placement((), (), "")
        self.setup_infer = setup_infer or (lambda: None)
        self.setup_post = setup_post or (lambda: None)  # on each post thread, pipelined
        self.stats = StageStats()
        self.stopping = threading.Event()  # every stage stops now (post failed, Ctrl-C, the end)
        self._turns = Turns(self.stopping)

    # --- the stages' work, shared by both runs -------------------------------------------------
    def source_step(self, frames) -> Job | None:
        t0 = time.perf_counter()
        frame = next(frames, None)
        if frame is None:
            return None
        t1 = time.perf_counter()
        job = Job(frame)
        if frame.image is not None:
            job.x, job.box = self.pipeline.prepare(frame.image)
            self.stats.add("decode", t1 - t0)
            self.stats.add("pre", time.perf_counter() - t1)
        return job

    def infer_step(self, job: Job) -> None:
        if job.x is not None:
            t0 = time.perf_counter()
            job.inference = self.pipeline.infer(job.x, self.keep_raw)
            self.stats.add("infer", time.perf_counter() - t0)

    def post_work(self, job: Job, turn: int | None = None):
        """Group, track and render one frame. Several post workers may run this at once; the
        tracking of the ``turn``-th frame then waits until the frames before it are tracked."""
        pred = None
        try:
            if job.inference is not None:
                t0 = time.perf_counter()
                if self.pipeline.merge_on_post:
                    job.inference = self.pipeline.merge(job.inference)
                    self.stats.add("merge", time.perf_counter() - t0)
                    t0 = time.perf_counter()
                pred = self.pipeline.decode(job.inference, job.box,
                                            job.x if self.keep_raw else None)
                self.stats.add("group", time.perf_counter() - t0)
        finally:  # a failed frame still takes its turn: the frames after it must not wait
            if self.pipeline.tracker is not None:
                with self._turns.turn(turn):
                    t0 = time.perf_counter()
                    pred = self.pipeline.track(pred)
                    self.stats.add("track", time.perf_counter() - t0)
        t1 = time.perf_counter()
        rendered = self.sink.render(job.frame, pred)
        if pred is not None:
            self.stats.add("render", time.perf_counter() - t1)
        return rendered

    def emit(self, job: Job, rendered) -> bool:
        """Write one finished frame (one thread, frame order)."""
        t0 = time.perf_counter()
        go_on = self.sink.emit(job.frame, rendered)
        if job.inference is not None:
            t1 = time.perf_counter()
            self.stats.add("write", t1 - t0)
            self.stats.finished.append(t1)
            self.stats.frames += 1
        return go_on

    def post_step(self, job: Job) -> bool:
        return self.emit(job, self.post_work(job))

    # --- serial ----------------------------------------------------------------------------
    def run_serial(self) -> StageStats:
        start = time.perf_counter()
        self.setup_infer()
        self.pipeline.merge_on_post = False  # one thread: the merge stays in the infer step
        frames = iter(self.source.frames)
        stage = "source"
        try:
            while (job := self.source_step(frames)) is not None:
                stage = "infer"
                self.infer_step(job)
                stage = "post"
                if not self.post_step(job):
                    break
                stage = "source"
        except Exception as err:
            if (interrupt := interrupt_of(err)) is not None:
                raise interrupt from None
            raise StageError(stage, err) from err
        finally:
            self.stats.wall = time.perf_counter() - start
        return self.stats
