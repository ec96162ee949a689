"""MetaSchedule's builder and runner pieces for tuning: candidate builds (cross-linked for
boards, so a board needs no compiler) and an RPC runner that cannot hang on a lost board."""

from __future__ import annotations

import functools
import os
import tempfile


def export_so(mod, compiler: str) -> str:
    """MetaSchedule ``f_export`` (bound to the target preset's compiler): a linked .so."""
    from tvm.support.cc import cross_compiler

    path = os.path.join(tempfile.mkdtemp(prefix="ms-"), "candidate.so")
    mod.export_library(path, fcompile=cross_compiler(compiler))
    return path


def make_export(preset) -> functools.partial:
    """``f_export`` linking with ``preset.cross_compiler`` (the host's g++ for x86-64)."""
    return functools.partial(export_so, compiler=preset.cross_compiler or "g++")


def build_candidate(mod, target, _params):
    """MetaSchedule ``f_build`` without importing ``tvm.s_tir.tensor_intrin``.

    The stock build imports the tensor-intrinsic tables (~20 s in each fresh worker, and the
    builder restarts its workers every batch); LitePose's fp32 convs use none of them.
    """
    from tvm.driver import build as tvm_build
    from tvm.s_tir.transform import RemoveWeightLayoutRewriteBlock

    mod = RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(mod)
    return tvm_build(mod, target=target)


@functools.cache
def _bounded_rpc_runner():
    from tvm.ir.utils import derived_object
    from tvm.s_tir.meta_schedule.runner import RPCRunner
    from tvm.support.popen_pool import PopenPoolExecutor

    @derived_object
    class BoundedRPCRunner(RPCRunner._cls):
        """MetaSchedule's RPCRunner with a worker pool that enforces the session timeout.

        The stock pool has none: when a board disappears, the next candidate's tracker request
        blocks forever and tuning hangs. Here such a candidate fails after ``timeout`` seconds
        (a failed trial), the worker is replaced, and tuning goes on to its summary.
        """

        def __init__(self, rpc_config, evaluator_config):
            super().__init__(rpc_config=rpc_config, evaluator_config=evaluator_config,
                             max_workers=1)
            self.pool = PopenPoolExecutor(max_workers=1, timeout=rpc_config.session_timeout_sec)

    return BoundedRPCRunner


def __getattr__(name: str):  # the runner class needs MetaSchedule: defined on first use only,
    # so the builder workers that import this module for f_build / f_export stay light
    if name == "BoundedRPCRunner":
        return _bounded_rpc_runner()
    raise AttributeError(name)
