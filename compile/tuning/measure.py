"""MetaSchedule's builder and runner pieces for tuning: candidate builds (cross-linked for
boards, so a board needs no compiler) and a runner that measures on every board a tracker holds
for a key, in parallel, and cannot hang on a lost board."""

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


def measure_on_board(tracker, session_timeout: int, evaluator_config, alloc_repeat: int,
                     artifact_path: str, device_type: str, args_info) -> dict:
    """One candidate on a board from the tracker (in a runner worker process): upload, run with
    MetaSchedule's own steps, clean up. Returns ``{"costs", "board", "error"}``: a failure on a
    known board is that board's, not the worker's."""
    from tvm.s_tir.meta_schedule.runner import rpc_runner as ms_rpc

    from compile.boards.tracker import request_board

    session = remote_path = board = None
    try:
        session, board = request_board(tracker, priority=1, session_timeout=session_timeout)
        device = session.device(device_type, 0)
        remote_path = os.path.basename(artifact_path)
        module = ms_rpc.default_upload_module(session, artifact_path, remote_path)
        args = ms_rpc.default_alloc_argument(session, device, args_info, alloc_repeat)
        costs = ms_rpc.default_run_evaluator(session, module, device, evaluator_config, args)
        return {"costs": [float(c) for c in costs], "board": board, "error": None}
    except Exception as err:  # a board lost mid-run raises TVM errors of many kinds
        return {"costs": None, "board": board, "error": f"{type(err).__name__}: {err}"}
    finally:
        if session is not None:
            try:
                ms_rpc.default_cleanup(session, remote_path)
            except Exception:  # the board may be gone
                pass


@functools.cache
def _runner_classes():
    from tvm.ir.utils import derived_object
    from tvm.s_tir.meta_schedule.runner import RPCRunner, RunnerResult
    from tvm.s_tir.meta_schedule.runner.rpc_runner import RPCRunnerFuture
    from tvm.support.popen_pool import PopenPoolExecutor

    @derived_object
    class BoardFuture(RPCRunnerFuture._cls):
        """A candidate in flight; its result names the board that ran it (``boards``)."""

        def __init__(self, future, timeout_sec: float, boards: list) -> None:
            super().__init__(future, timeout_sec)
            self.boards = boards

        def result(self) -> RunnerResult:
            try:
                out = self.future.result()
            except TimeoutError:  # the pool killed the worker: which board is unknown
                self.boards.append(None)
                return RunnerResult(None, error_msg=f"board runner: timeout, killed after "
                                    f"{self.timeout_sec} seconds")
            except Exception as err:
                self.boards.append(None)
                return RunnerResult(None, error_msg=f"board runner: {err}")
            self.boards.append(out["board"])
            if out["error"]:
                return RunnerResult(None, error_msg=f"board {out['board']}: {out['error']}")
            return RunnerResult(out["costs"], None)

    @derived_object
    class BoardRunner(RPCRunner._cls):
        """MetaSchedule's RPC runner for a farm of boards behind one tracker key.

        ``parallel`` candidates are in flight at once, each in its own worker that asks the
        tracker for a free board (waiting in its queue while all are busy), and each bounded by
        the session timeout: a dead board fails only its own candidates and its worker is
        replaced, while the others go on. ``boards`` receives, candidate by candidate as the
        task scheduler collects them, the address of the board that ran each (None: unknown).
        """

        def __init__(self, tracker, rpc_config, evaluator_config, parallel: int = 1):
            super().__init__(rpc_config=rpc_config, evaluator_config=evaluator_config,
                             max_workers=1)
            self.tracker, self.parallel, self.boards = tracker, parallel, []
            self.pool = PopenPoolExecutor(max_workers=parallel, timeout=rpc_config.session_timeout_sec)

        def run(self, runner_inputs):
            timeout = self.rpc_config.session_timeout_sec
            return [BoardFuture(self.pool.submit(
                measure_on_board, self.tracker, timeout, self.evaluator_config, self.alloc_repeat,
                str(i.artifact_path), str(i.device_type), tuple(a.as_json() for a in i.args_info)),
                timeout, self.boards) for i in runner_inputs]

        def take_boards(self) -> list:
            """The boards of the candidates collected since the last call, in order."""
            taken, self.boards[:] = list(self.boards), []
            return taken

    return BoardRunner


def __getattr__(name: str):  # the runner class needs MetaSchedule: defined on first use only,
    # so the builder workers that import this module for f_build / f_export stay light
    if name == "BoardRunner":
        return _runner_classes()
    raise AttributeError(name)
