"""Numba's on-disk cache, keyed by every kernel source.

Numba invalidates a cached function only when *its own* file changes, so a cached caller keeps
running the old code of an edited callee in another file. Pointing the cache at a folder named
by a digest of all kernel sources makes any edit start from a fresh cache.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import numba

logger = logging.getLogger(__name__)

KERNELS = Path(__file__).resolve().parent


def sources_digest(folder: Path = KERNELS) -> str:
    """sha256 over the names and contents of ``folder/*.py`` (sorted), 16 hex digits."""
    h = hashlib.sha256()
    for path in sorted(folder.glob("*.py")):
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def cache_dir() -> Path:
    """``$NUMBA_CACHE_DIR`` (else ``~/.cache/litepose-kit/numba``) ``/kernels-<digest>``."""
    base = os.environ.get("NUMBA_CACHE_DIR") or Path.home() / ".cache" / "litepose-kit" / "numba"
    return Path(base) / f"kernels-{sources_digest()}"


def use_source_keyed_cache() -> None:
    """Point Numba's cache at :func:`cache_dir`; must run before the kernels are decorated."""
    path = cache_dir()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:  # read-only home: Numba's own locators still apply
        logger.warning("cannot create the kernel cache %s (%s); using Numba's default", path, err)
        return
    numba.config.CACHE_DIR = str(path)


use_source_keyed_cache()  # on import, before any kernel module is decorated
