"""Host side of the LitePose edge kit: model zoo, Relax import, graph passes, tuning, build, deploy.

The packages and top modules in the order they read: each imports only its own and earlier ones
(``tests/test_layout.py`` checks it). ``targets`` (presets) and ``model`` (the zoo) come first;
``boards`` (tracker client, virtual board, OpenCL runtime) is what tuning and deploy reach
boards through; ``cli`` reads them all.
"""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
__version__ = "0.1.0"

FLOW = ("targets", "model", "boards", "frontend", "passes", "tuning", "build", "deploy", "eval",
        "bench", "demo", "cli")
