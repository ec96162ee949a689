"""``compile/`` reads in one direction: each package or top module (a *unit*) imports only its
own and earlier units of ``compile.FLOW``, every unit is placed there, and no module imports
another in a cycle. The units are discovered from the tree; only their order is declared."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.unit


def module_imports(root: Path, package: str = "compile") -> dict[str, set[str]]:
    """Dotted module under ``root`` (the package folder) -> the dotted modules of the package it
    imports anywhere in its body (lazy imports too), relative imports resolved."""
    graph = {}
    for path in root.rglob("*.py"):
        rel = path.relative_to(root).with_suffix("").parts
        name = ".".join((package, *rel))
        is_init = rel[-1] == "__init__"
        if is_init:
            name = name.rsplit(".", 1)[0]
        here = name if is_init else name.rsplit(".", 1)[0]  # the package the module sits in
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.split(".")[0] == package}
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = here.split(".")[: len(here.split(".")) - node.level + 1]
                    mod = ".".join([*base, node.module] if node.module else base)
                else:
                    mod = node.module or ""
                if mod.split(".")[0] != package:
                    continue
                found.add(mod)
                found |= {f"{mod}.{a.name}" for a in node.names}  # from pkg import module
        graph[name] = found
    return {m: {d for d in deps if _owner(d, graph)} - {m} for m, deps in graph.items()}


def _owner(dotted: str, graph: dict) -> str | None:
    """The module of ``graph`` that ``dotted`` (a module, or a name inside one) refers to."""
    while dotted and dotted not in graph:
        dotted = dotted.rpartition(".")[0]
    return dotted or None


def unit_of(module: str) -> str:
    """``compile.tuning.select`` -> ``tuning``; ``compile`` itself -> ``""``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def flow_problems(root: Path, flow: tuple[str, ...], package: str = "compile") -> list[str]:
    """Every unit not placed in ``flow``, and every import of a later unit by an earlier one."""
    graph = module_imports(root, package)
    units = {unit_of(m) for m in graph} - {"", "__main__"}
    problems = [f"unit {u!r} is not in {package}.FLOW" for u in sorted(units - set(flow))]
    rank = {u: i for i, u in enumerate(flow)}
    for m, deps in sorted(graph.items()):
        for d in sorted(deps):
            a, b = unit_of(m), unit_of(_owner(d, graph))
            if a in rank and b in rank and rank[b] > rank[a]:
                problems.append(f"{m} -> {_owner(d, graph)} ({a} reads {b}, a later stage)")
    return problems


def cycles(graph: dict[str, set[str]]) -> list[str]:
    state: dict[str, int] = {}
    found: list[str] = []

    def visit(m: str, trail: list[str]) -> None:
        state[m] = 1
        for d in graph.get(m, ()):
            d = _owner(d, graph)
            if state.get(d) == 1:
                found.append(" -> ".join([*trail, m, d]))
            elif d not in state:
                visit(d, [*trail, m])
        state[m] = 2

    for m in graph:
        if m not in state:
            visit(m, [])
    return found


def test_compile_reads_in_the_order_of_its_flow():
    from compile import FLOW

    assert flow_problems(REPO / "compile", FLOW) == []


def test_compile_has_no_import_cycles():
    assert cycles(module_imports(REPO / "compile")) == []


def test_few_modules_sit_directly_in_compile():
    top = {p.stem for p in (REPO / "compile").glob("*.py")} - {"__init__", "__main__"}
    assert len(top) <= 8, sorted(top)


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_the_checks_catch_a_tree_that_reads_backwards(tmp_path):
    """A model module that reads tuning (lazily, relatively, or by ``from pkg import mod``), an
    unplaced package and a cycle are each reported; the same tree without them is clean."""
    clean = {"__init__.py": "", "model/__init__.py": "", "model/net.py": "X = 1\n",
             "tuning/__init__.py": "", "tuning/tune.py": "from ..model.net import X\n",
             "build.py": "from .tuning import tune\n"}
    flow = ("model", "tuning", "build")
    assert flow_problems(write_tree(tmp_path / "good", clean), flow, "kit") == []
    for bad, expect in (
        ({"model/net.py": "def f():\n    from kit.tuning.tune import X\n"},
         "kit.model.net -> kit.tuning.tune"),
        ({"model/net.py": "from ..tuning import tune\n"}, "kit.model.net -> kit.tuning.tune"),
        ({"model/net.py": "import kit.build\n"}, "kit.model.net -> kit.build"),
        ({"extra/__init__.py": ""}, "unit 'extra' is not in kit.FLOW"),
    ):
        root = write_tree(tmp_path / f"bad{len(list(tmp_path.iterdir()))}", {**clean, **bad})
        problems = flow_problems(root, flow, "kit")
        assert any(expect in p for p in problems), (bad, problems)
    loop = write_tree(tmp_path / "loop", {**clean, "model/a.py": "from .b import Y\n",
                                          "model/b.py": "from .a import Z\n"})
    assert any("kit.model.a -> kit.model.b -> kit.model.a" in c or
               "kit.model.b -> kit.model.a -> kit.model.b" in c
               for c in cycles(module_imports(loop, "kit")))


def test_tune_does_not_import_build():
    code = "import sys, compile.tuning.tune; print('compile.build' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"
