"""Running frames through the pipeline: one after another, or as three stages joined by bounded
queues (source: decode + pre-process; infer: the TVM VM's network, and the merge of the heads
where the library runs it on a GPU; post: the library's merge on the CPU, group, render, write;
the post stage may run ``post_workers`` frames at once and still writes in frame order).

Both runs hand the writer the same predictions in the same order. A camera source never waits
for a slow consumer: when its queue is full the oldest pending frame is dropped (and counted);
a file source waits. A stage that fails, or Ctrl-C, stops every stage within about a second
(``POLL`` plus one frame of work), and what was finished is still written by the caller.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from .pipeline import Inference, Pipeline, Prediction, StageStats
from .placement import Placement, pin_current_thread
from .preprocess import Letterbox
from .sources import Frame, Source

logger = logging.getLogger(__name__)

POLL = 0.1  # seconds between checks of the stop flag while blocked on a queue
QUEUE_SIZE = 2
JOIN_TIMEOUT_S = 60.0  # a halted stage finishes its current frame (an untuned flip pass: seconds)
_DONE = object()


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
        self._stop = stop

    @contextmanager
    def turn(self, n: int | None):
        if n is None:
            yield
            return
        with self._cond:
            while self._next != n:
                if self._stop.is_set():
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


class Runner:
    """Runs ``source`` through ``pipeline`` into ``sink``; ``stats`` collects the timings."""

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
        self._halt = threading.Event()  # the source stops producing (a later stage failed)
        self._stop = threading.Event()  # every stage stops now (post failed, Ctrl-C, the end)
        self._error: StageError | None = None
        self._turns = Turns(self._stop)

    # --- the stages' work, shared by both runs -------------------------------------------------
    def _source_step(self, frames) -> Job | None:
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

    def _infer_step(self, job: Job) -> None:
        if job.x is not None:
            t0 = time.perf_counter()
            job.inference = self.pipeline.infer(job.x, self.keep_raw)
            self.stats.add("infer", time.perf_counter() - t0)

    def _post_work(self, job: Job, turn: int | None = None):
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

    def _emit(self, job: Job, rendered) -> bool:
        """Write one finished frame (one thread, frame order)."""
        t0 = time.perf_counter()
        go_on = self.sink.emit(job.frame, rendered)
        if job.inference is not None:
            t1 = time.perf_counter()
            self.stats.add("write", t1 - t0)
            self.stats.finished.append(t1)
            self.stats.frames += 1
        return go_on

    def _post_step(self, job: Job) -> bool:
        return self._emit(job, self._post_work(job))

    # --- serial ----------------------------------------------------------------------------
    def run_serial(self) -> StageStats:
        start = time.perf_counter()
        self.setup_infer()
        self.pipeline.merge_on_post = False  # one thread: the merge stays in the infer step
        frames = iter(self.source.frames)
        stage = "source"
        try:
            while (job := self._source_step(frames)) is not None:
                stage = "infer"
                self._infer_step(job)
                stage = "post"
                if not self._post_step(job):
                    break
                stage = "source"
        except Exception as err:
            if (interrupt := interrupt_of(err)) is not None:
                raise interrupt from None
            raise StageError(stage, err) from err
        finally:
            self.stats.wall = time.perf_counter() - start
        return self.stats

    # --- pipelined ---------------------------------------------------------------------------
    def _put(self, q: queue.Queue, item, stage: str, drop_oldest: bool = False,
             until: threading.Event | None = None) -> bool:
        until = until or self._stop
        t0 = time.perf_counter()
        try:
            while not until.is_set() and not self._stop.is_set():
                if drop_oldest and item is not _DONE:
                    try:
                        q.put_nowait(item)
                        return True
                    except queue.Full:
                        try:
                            q.get_nowait()
                            self.stats.dropped += 1
                        except queue.Empty:
                            pass
                        continue
                try:
                    q.put(item, timeout=POLL)
                    return True
                except queue.Full:
                    continue
            return False
        finally:
            self.stats.wait(stage, time.perf_counter() - t0)

    def _get(self, q: queue.Queue, stage: str):
        t0 = time.perf_counter()
        try:
            while not self._stop.is_set():
                try:
                    return q.get(timeout=POLL)
                except queue.Empty:
                    continue
            return _DONE
        finally:
            self.stats.wait(stage, time.perf_counter() - t0)

    def _guard(self, stage: str, body: Callable[[], None], downstream: queue.Queue):
        """Run a stage thread; if it fails, record the error, stop the source and let the later
        stages finish the frames already handed to them."""
        def run() -> None:
            try:
                body()
            except BaseException as err:  # handed to the main thread, which raises it
                if self._error is None:
                    self._error = StageError(stage, err)
                    self._error.__cause__ = err
                self._halt.set()
                self._put(downstream, _DONE, stage)
        return run

    def _source_thread(self, out: queue.Queue) -> None:
        pin_current_thread(self.placement.other)
        frames = iter(self.source.frames)
        drop = self.source.live
        while not self._halt.is_set():
            job = self._source_step(frames)
            if not self._put(out, _DONE if job is None else job, "source", drop, self._halt):
                return
            if job is None:
                return

    def _infer_thread(self, inp: queue.Queue, out: queue.Queue) -> None:
        pin_current_thread(self.placement.infer)
        self.setup_infer()  # TVM's thread pool belongs to the thread that calls the VM
        while (job := self._get(inp, "infer")) is not _DONE:
            self._infer_step(job)
            if not self._put(out, job, "infer"):
                return
        self._put(out, _DONE, "infer")

    def _post_pool(self, pool: ThreadPoolExecutor, q_inf: queue.Queue) -> None:
        """The post stage on ``post_workers`` threads: frames are grouped and rendered
        concurrently and emitted in frame order as soon as the oldest one is done."""
        pending: deque = deque()  # (job, future) in frame order
        source_done, submitted = False, 0
        while not source_done or pending:
            if not source_done and len(pending) < self.post_workers:
                job = self._get(q_inf, "post")
                if job is _DONE:
                    source_done = True
                else:
                    pending.append((job, pool.submit(self._post_work, job, submitted)))
                    submitted += 1
                    if not pending[0][1].done():
                        continue
            job, future = pending.popleft()
            if not self._emit(job, future.result()):
                return

    def run_pipelined(self) -> StageStats:
        """Three threads; the calling thread runs the post stage (and so the writer). A merge
        the library runs on the CPU moves to the post stage: the network alone bounds the rate."""
        pin_current_thread(self.placement.other)
        self.pipeline.merge_on_post = self.pipeline.can_merge_on_post
        if self.pipeline.merge_on_post:
            self.setup_post()
        q_src, q_inf = queue.Queue(QUEUE_SIZE), queue.Queue(QUEUE_SIZE)
        threads = [
            threading.Thread(target=self._guard("source", lambda: self._source_thread(q_src), q_src),
                             name="litepose-source", daemon=True),
            threading.Thread(target=self._guard("infer", lambda: self._infer_thread(q_src, q_inf),
                                                q_inf), name="litepose-infer", daemon=True),
        ]
        start = time.perf_counter()
        for t in threads:
            t.start()
        setup = self.setup_post if self.pipeline.merge_on_post else None
        pool = (ThreadPoolExecutor(self.post_workers, thread_name_prefix="litepose-post",
                                   initializer=setup) if self.post_workers > 1 else None)
        try:
            if pool is None:
                while (job := self._get(q_inf, "post")) is not _DONE:
                    if not self._post_step(job):
                        break
            else:
                self._post_pool(pool, q_inf)
        except BaseException as err:
            if (interrupt := interrupt_of(err)) is not None:
                raise interrupt from None
            if self._error is None:
                self._error = StageError("post", err)
                self._error.__cause__ = err
        finally:
            self._halt.set()
            self._stop.set()
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
            for t in threads:  # a stage ends within one frame's work once halted; a TVM call
                t.join(timeout=JOIN_TIMEOUT_S)  # cut off at exit aborts the process
                if t.is_alive():
                    logger.warning("stage thread %s did not stop within %.0f s", t.name,
                                   JOIN_TIMEOUT_S)
            self.stats.wall = time.perf_counter() - start
        if self._error is not None:
            raise self._error
        return self.stats
