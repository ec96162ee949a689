"""Running frames through the pipeline: one after another (:meth:`Runner.run_serial`,
``runtime.steps``), or as three stages joined by bounded queues (:meth:`Runner.run_pipelined`,
``runtime.threaded``). Both runs hand the writer the same predictions in the same order.
"""

from __future__ import annotations

from .pipeline import StageStats
from .steps import FrameSteps
from .threaded import PipelinedRun


class Runner(FrameSteps):
    """Runs ``source`` through ``pipeline`` into ``sink``, serially or pipelined; ``stats``
    collects the timings."""

    def run_pipelined(self) -> StageStats:
        """Three threads; the calling thread runs the post stage (and so the writer). A merge
        the library runs on the CPU moves to the post stage: the network alone bounds the rate."""
        return PipelinedRun(self).run()
