"""The rooms read in one direction: model -> import -> tune -> build -> deploy -> evaluate, no
cycles."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.unit

# a module may import only modules of its own or an earlier room
ROOMS = [
    {"litepose", "models", "weights", "deconv", "targets", "tracker"},  # model zoo
    {"frontend", "info", "merge"},  # import into Relax (+ the heads' merge; info: MACs)
    {"tunedb", "scheduler", "progress", "measure", "remeasure", "tune"},  # tuning
    {"build"},
    {"deploy", "board", "board_opencl", "opencl", "bench", "demo"},
    {"metrics", "evaluate"},  # accuracy: runs artifacts (local or deployed) and scores them
]


def compile_imports() -> dict[str, set[str]]:
    """Module -> the ``compile`` modules it imports anywhere in its body (lazy imports too)."""
    graph = {}
    for path in (REPO / "compile").glob("*.py"):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                mod = node.module or ""
                if node.level == 1:
                    names.add(mod.split(".")[0] if mod else "")
                elif mod.startswith("compile."):
                    names.add(mod.split(".")[1])
        graph[path.stem] = {n for n in names if n and n not in ("cli", "__init__")}
    return graph


def test_every_module_has_a_room_and_reads_backwards():
    graph = compile_imports()
    room = {m: i for i, mods in enumerate(ROOMS) for m in mods}
    assert set(graph) - {"__init__", "__main__"} == set(room), "add new modules to ROOMS"
    wrong = [f"{m} -> {d}" for m, deps in graph.items() if m in room
             for d in deps if room[d] > room[m]]
    assert not wrong, f"imports against the flow: {wrong}"


def test_no_import_cycles():
    graph = compile_imports()
    state: dict[str, int] = {}

    def visit(m: str, trail: list[str]) -> None:
        state[m] = 1
        for d in graph.get(m, ()):
            assert state.get(d) != 1, f"import cycle: {' -> '.join([*trail, m, d])}"
            if d not in state:
                visit(d, [*trail, m])
        state[m] = 2

    for m in graph:
        if m not in state:
            visit(m, [])


def test_tune_does_not_import_build():
    code = "import sys, compile.tune; print('compile.build' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"
