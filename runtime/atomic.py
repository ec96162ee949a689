"""The kit's atomic writers: a file or a whole folder appears complete under its name, or not
at all, with the permissions the user's umask gives (never ``mkstemp``'s 0600)."""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

FILE_MODE = 0o666  # what open() asks for; the umask takes bits away
EXEC_MODE = 0o777  # what a linker asks for a shared library


def umask() -> int:
    """The process umask (read without changing it where Linux tells, else set and restored)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def temp_prefix(path: Path) -> str:
    """The name prefix of ``path``'s temporaries, so a later run can find strays of a killed one."""
    return f".{path.stem}-"


@contextmanager
def atomic_path(path: str | Path, mode: int = FILE_MODE) -> Iterator[Path]:
    """A temporary path next to ``path`` (same suffix, so encoders pick the format); given
    ``mode`` less the umask and renamed onto ``path`` when the block ends normally, removed
    when it raises."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=temp_prefix(path), suffix=path.suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, mode & ~umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_stale(path: str | Path) -> list[Path]:
    """Remove temporaries of ``path`` that a killed writer left (``.<stem>-*<suffix>``)."""
    path = Path(path)
    stale = [p for p in path.parent.glob(f"{temp_prefix(path)}*{path.suffix}") if p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def write_json_atomic(path: str | Path, data, indent: int | None = None) -> None:
    """Write ``data`` as JSON to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=indent))


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def check_writable_dir(path: str | Path, what: str = "output folder") -> Path:
    """Create ``path`` if needed and prove it accepts files; ``ValueError`` naming it otherwise."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{what} {str(path)!r} is not writable: it exists and is not a folder; "
                         "name a folder (it is created when missing)")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".probe-"):
            pass
    except OSError as err:
        raise ValueError(f"{what} {str(path)!r} is not writable: {err.strerror or err}") from err
    return path


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux ``renameat2(RENAME_EXCHANGE)``); False if unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0


def _staging_prefixes(path: Path) -> tuple[str, str]:
    """Name prefixes of :func:`atomic_dir`'s staging folder and of the old folder it moves aside."""
    return f".{path.name}-build-", f".{path.name}-old-"


def remove_stale_dirs(path: str | Path) -> None:
    """Remove staging folders of ``path`` that a killed :func:`atomic_dir` left."""
    path = Path(path)
    for stale in path.parent.glob(f".{path.name}-*"):
        if stale.is_dir() and stale.name.startswith(_staging_prefixes(path)):
            shutil.rmtree(stale, ignore_errors=True)


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """A temporary folder next to ``path`` to fill; when the block ends normally it replaces
    ``path`` whole (one atomic exchange on Linux), when it raises it is removed and ``path``
    is untouched. The old folder's contents are deleted after the swap."""
    path = Path(path)
    staging, aside = _staging_prefixes(path)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=staging))
    try:
        yield tmp
        os.chmod(tmp, EXEC_MODE & ~umask())
        if not path.exists():
            os.rename(tmp, path)
        elif _exchange(tmp, path):
            shutil.rmtree(tmp)  # now the old folder
        else:  # two renames: a crash between them leaves the old folder beside, never half
            old = Path(tempfile.mkdtemp(dir=path.parent, prefix=aside))
            os.rename(path, old / path.name)
            os.rename(tmp, path)
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
