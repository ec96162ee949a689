"""The artifact contract: metadata schema written next to the compiled library, atomically."""

from __future__ import annotations

import tempfile
from pathlib import Path

SCHEMA_VERSION = 1
LIBRARY_NAME = "model.so"
METADATA_NAME = "metadata.json"


def check_writable_dir(path: str | Path) -> Path:
    """Create ``path`` if needed and prove it accepts files; ``ValueError`` otherwise."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".probe-"):
            pass
    except OSError as err:
        raise ValueError(f"output folder {str(path)!r} is not writable: {err}") from err
    return path
