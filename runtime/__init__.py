"""Device side of the LitePose edge kit: load an artifact, pre-process, infer, group, report.

Needs only TVM (runtime API), numpy, OpenCV and Numba; never torch, never ``compile/``.
"""

__version__ = "0.1.0"
