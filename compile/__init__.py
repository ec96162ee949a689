"""Host side of the LitePose edge kit: model zoo, Relax import, targets, tuning, build, deploy."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
__version__ = "0.1.0"
