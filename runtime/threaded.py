"""The pipelined run: three stages on their own threads joined by bounded queues (source, infer,
post; the post stage may run ``post_workers`` frames at once and still writes in frame order).

A camera source never waits for a slow consumer: when its queue is full the oldest pending
frame is dropped (and counted); a file source waits. A stage that fails, or Ctrl-C, stops every
stage within about a second (``POLL`` plus one frame of work), and what was finished is still
written by the caller.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from .pipeline import StageStats
from .placement import pin_current_thread
from .steps import POLL, FrameSteps, StageError, interrupt_of

logger = logging.getLogger(__name__)

QUEUE_SIZE = 2
JOIN_TIMEOUT_S = 60.0  # a halted stage finishes its current frame (an untuned flip pass: seconds)
_DONE = object()


class PipelinedRun:
    """One pipelined run of ``steps``: the calling thread runs the post stage (and the writer)."""

    def __init__(self, steps: FrameSteps):
        self.steps = steps
        self._halt = threading.Event()  # the source stops producing (a later stage failed)
        self._error: StageError | None = None

    def _put(self, q: queue.Queue, item, stage: str, drop_oldest: bool = False,
             until: threading.Event | None = None) -> bool:
        until = until or self.steps.stopping
        t0 = time.perf_counter()
        try:
            while not until.is_set() and not self.steps.stopping.is_set():
                if drop_oldest and item is not _DONE:
                    try:
                        q.put_nowait(item)
                        return True
                    except queue.Full:
                        try:
                            q.get_nowait()
                            self.steps.stats.dropped += 1
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
            self.steps.stats.wait(stage, time.perf_counter() - t0)

    def _get(self, q: queue.Queue, stage: str):
        t0 = time.perf_counter()
        try:
            while not self.steps.stopping.is_set():
                try:
                    return q.get(timeout=POLL)
                except queue.Empty:
                    continue
            return _DONE
        finally:
            self.steps.stats.wait(stage, time.perf_counter() - t0)

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
        pin_current_thread(self.steps.placement.other)
        frames = iter(self.steps.source.frames)
        drop = self.steps.source.live
        while not self._halt.is_set():
            job = self.steps.source_step(frames)
            if not self._put(out, _DONE if job is None else job, "source", drop, self._halt):
                return
            if job is None:
                return

    def _infer_thread(self, inp: queue.Queue, out: queue.Queue) -> None:
        pin_current_thread(self.steps.placement.infer)
        self.steps.setup_infer()  # TVM's thread pool belongs to the thread that calls the VM
        while (job := self._get(inp, "infer")) is not _DONE:
            self.steps.infer_step(job)
            if not self._put(out, job, "infer"):
                return
        self._put(out, _DONE, "infer")

    def _post_pool(self, pool: ThreadPoolExecutor, q_inf: queue.Queue) -> None:
        """The post stage on ``post_workers`` threads: frames are grouped and rendered
        concurrently and emitted in frame order as soon as the oldest one is done."""
        pending: deque = deque()  # (job, future) in frame order
        source_done, submitted = False, 0
        while not source_done or pending:
            if not source_done and len(pending) < self.steps.post_workers:
                job = self._get(q_inf, "post")
                if job is _DONE:
                    source_done = True
                else:
                    pending.append((job, pool.submit(self.steps.post_work, job, submitted)))
                    submitted += 1
                    if not pending[0][1].done():
                        continue
            job, future = pending.popleft()
            if not self.steps.emit(job, future.result()):
                return

    def run(self) -> StageStats:
        """Three threads; the calling thread runs the post stage (and so the writer). A merge
        the library runs on the CPU moves to the post stage: the network alone bounds the rate."""
        pin_current_thread(self.steps.placement.other)
        self.steps.pipeline.merge_on_post = self.steps.pipeline.can_merge_on_post
        if self.steps.pipeline.merge_on_post:
            self.steps.setup_post()
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
        setup = self.steps.setup_post if self.steps.pipeline.merge_on_post else None
        pool = (ThreadPoolExecutor(self.steps.post_workers, thread_name_prefix="litepose-post",
                                   initializer=setup) if self.steps.post_workers > 1 else None)
        try:
            if pool is None:
                while (job := self._get(q_inf, "post")) is not _DONE:
                    if not self.steps.post_step(job):
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
            self.steps.stopping.set()
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
            for t in threads:  # a stage ends within one frame's work once halted; a TVM call
                t.join(timeout=JOIN_TIMEOUT_S)  # cut off at exit aborts the process
                if t.is_alive():
                    logger.warning("stage thread %s did not stop within %.0f s", t.name,
                                   JOIN_TIMEOUT_S)
            self.steps.stats.wall = time.perf_counter() - start
        if self._error is not None:
            raise self._error
        return self.steps.stats
