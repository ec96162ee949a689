"""Host side of the LitePose edge kit: model zoo, Relax import, targets, tuning, build, deploy."""

__version__ = "0.1.0"
