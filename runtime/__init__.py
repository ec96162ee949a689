"""Device side of the LitePose edge kit: load an artifact, pre-process, infer, group, track,
report.

Needs only TVM (runtime API), numpy, OpenCV and Numba; never torch, never ``compile/``.
``from runtime import PoseEstimator`` is the Python API (:mod:`runtime.api`).
"""

__version__ = "0.1.0"
__all__ = ["People", "PoseEstimator", "Tracker", "__version__"]


def __getattr__(name: str):  # lazy: `runtime/run.py --help` must not load TVM or Numba
    if name in ("PoseEstimator", "People"):
        from . import api

        return getattr(api, name)
    if name == "Tracker":
        from .tracking import Tracker

        return Tracker
    raise AttributeError(f"module 'runtime' has no attribute {name!r}")
