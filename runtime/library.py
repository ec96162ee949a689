"""The compiled library as a file: its ELF machine (and whether it is whole), its digest, a
name that stays inside its folder, and this machine's architecture. Standard library only."""

from __future__ import annotations

import hashlib
import platform
from pathlib import Path

ELF_MACHINES = {"x86_64": 0x3E, "aarch64": 0xB7}


def elf_machine(path: str | Path) -> str:
    """The machine of an ELF file as a key of ``ELF_MACHINES`` (or ``"0x.."`` if unknown).

    Raises ``ValueError`` when the file is not an ELF object or is shorter than its own header
    says (a truncated copy: mapping it would crash the loader with SIGBUS).
    """
    path = Path(path)
    with open(path, "rb") as fh:
        header = fh.read(64)
    if len(header) < 20 or header[:4] != b"\x7fELF":
        raise ValueError(f"{path} is not an ELF shared object")
    code = int.from_bytes(header[18:20], "little")
    wide = header[4] == 2  # ELFCLASS64; the section header table ends the file
    at, entry, count = (0x28, 0x3A, 0x3C) if wide else (0x20, 0x2E, 0x30)
    if len(header) < count + 2:
        raise ValueError(f"{path} is truncated ({len(header)} bytes, not even an ELF header)")
    need = (int.from_bytes(header[at:at + (8 if wide else 4)], "little")
            + int.from_bytes(header[entry:entry + 2], "little")
            * int.from_bytes(header[count:count + 2], "little"))
    size = path.stat().st_size
    if size < need:
        raise ValueError(f"{path} is truncated: {size} bytes, its ELF header needs {need}; "
                         "copy or build the artifact again")
    return next((k for k, v in ELF_MACHINES.items() if v == code), hex(code))


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def plain_file_name(name: str) -> bool:
    """True for a bare file name (no folder part, not ``.``/``..``): it stays in its folder."""
    return (isinstance(name, str) and name not in ("", ".", "..") and "/" not in name
            and "\\" not in name and "\0" not in name)


def checked_library(folder: Path, name: str, sha256: str | None, described_in: str) -> Path:
    """``folder/name`` if it is a regular file inside ``folder`` (no link out of it), a whole ELF
    object and, when ``sha256`` is given, a file of that digest; ``ValueError`` naming the file
    and the fix otherwise (``described_in``: the file whose field named it)."""
    path = folder / name
    if not path.is_file():
        raise ValueError(f"artifact library {path} is missing")
    if path.resolve().parent != folder.resolve():
        raise ValueError(f"artifact library {path} links to {path.resolve()}, outside the "
                         f"artifact folder: {described_in} field 'library' must name a file in "
                         "the folder itself")
    elf_machine(path)
    if sha256 is not None and file_sha256(path) != sha256:
        raise ValueError(f"{path} does not match the sha256 in {described_in} (truncated, altered "
                         "or from another build): copy or build the artifact again")
    return path


def this_machine() -> str:
    """This machine's architecture in ``ELF_MACHINES`` terms (``arm64`` is ``aarch64``)."""
    machine = platform.machine().lower()
    return {"arm64": "aarch64", "amd64": "x86_64"}.get(machine, machine)
