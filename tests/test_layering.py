"""The package layering of docs/design.md: ``diffusion/`` knows one model and imports nothing from ``blend/`` or ``dpok/``;
``blend/`` and ``dpok/`` share only ``diffusion/``; no import cycles between modules; no generic top-level ``common``."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("diffusion", "blend", "dpok", "rewards", "toy", "theory", "diffusion_blend")


def _imports(path: Path) -> set[str]:
    """Project modules imported anywhere in the file (also inside functions: lazy imports count; imports for type
    checkers only, under ``if TYPE_CHECKING:``, do not)."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            node.body = []
    out = set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        out |= {n for n in names if n.split(".")[0] in PACKAGES}
    return out


def _graph() -> dict[str, set[str]]:
    graph = {}
    for pkg in PACKAGES:
        for path in (REPO / pkg).rglob("*.py"):
            mod = ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
            graph[mod] = _imports(path)
    return graph


def test_diffusion_imports_nothing_from_blend_or_dpok():
    bad = {m: sorted(i for i in deps if i.split(".")[0] in ("blend", "dpok"))
           for m, deps in _graph().items() if m.split(".")[0] == "diffusion"}
    assert not {m: d for m, d in bad.items() if d}, bad


def test_blend_and_dpok_do_not_import_each_other():
    g = _graph()
    for a, b in (("blend", "dpok"), ("dpok", "blend")):
        bad = {m: sorted(i for i in deps if i.split(".")[0] == b) for m, deps in g.items() if m.split(".")[0] == a}
        assert not {m: d for m, d in bad.items() if d}, bad


def test_no_import_cycles():
    g = _graph()
    resolved = {m: {d if d in g else d.rsplit(".", 1)[0] for d in deps} & set(g) for m, deps in g.items()}
    state: dict[str, int] = {}

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for d in resolved[m]:
            if d == m or d == m.rsplit(".", 1)[0]:
                continue  # a package's own __init__
            if state.get(d) == 1:
                raise AssertionError("import cycle: " + " -> ".join([*stack[stack.index(d):], d]))
            if d not in state:
                visit(d, [*stack, d])
        state[m] = 2

    for m in sorted(g):
        if m not in state:
            visit(m, [m])


def test_no_generic_common_package():
    assert not (REPO / "common").exists()
