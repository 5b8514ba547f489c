"""The package layering of docs/design.md, checked on every module's imports (parsed with ``ast``; imports inside
functions count, imports for type checkers only do not).

Layers, bottom to top (``LAYERS``: a module's layer is that of its longest listed prefix): the ground floor
(``dbcore``) imports nothing of the project; ``diffusion/`` imports only the ground floor; ``rewards/`` only the
ground floor (no exceptions); the method (``blend/``) and the training (``dpok/``) side
by side, never importing each other; the experiment harness; the front doors; the entry scripts. Nothing imports
upward (so nothing but front doors and entry scripts imports a front door), there are no import cycles between
modules and no generic top-level ``common``; ``toy/`` uses blending through the public API only."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("dbcore", "diffusion", "blend", "dpok", "rewards", "toy", "theory", "diffusion_blend")
ENTRY_SCRIPTS = ("run_DB.py", "train_online_pg.py", "app.py", "scripts")

GROUND, MODEL, REWARDS, METHOD, HARNESS, FRONT, ENTRY = range(7)
LAYERS = {
    "dbcore": GROUND,
    "diffusion": MODEL,
    "rewards": REWARDS,
    "blend": METHOD, "dpok": METHOD,
    "blend.store": HARNESS, "blend.stats": HARNESS, "blend.claims": HARNESS, "blend.report": HARNESS, "blend.experiment": HARNESS,
    "theory": HARNESS,  # the closed-form lab: experiments on the method's algebra
    "blend.cli": FRONT, "blend.run_plan": FRONT, "blend.runner": FRONT, "blend.live": FRONT, "blend.ui": FRONT,
    "blend.pipeline": FRONT, "diffusion_blend": FRONT,
    "blend.sweeps": FRONT,  # the paper's sweeps (scripts/paper_sweeps.py): drives run_DB.py's front door
    "toy": ENTRY,  # a user of the public API (below)
    "scripts": ENTRY, "run_DB": ENTRY, "train_online_pg": ENTRY, "app": ENTRY,
}
FRONT_DOORS = {m for m, layer in LAYERS.items() if layer == FRONT}
SIDE_BY_SIDE = ("blend", "dpok")  # the method and the training share only what lies below them
# What toy/ may use of blending: the public API (a spec, the sampler, the method registry, the statistics)
TOY_PUBLIC = ("blend.spec", "blend.sampler", "blend.methods", "blend.stats", "diffusion_blend")


def _imports(path: Path, lazy: bool = True) -> set[str]:
    """Project modules imported anywhere in the file (also inside functions unless ``lazy=False``; imports for type
    checkers only, under ``if TYPE_CHECKING:``, do not). ``from pkg import mod`` counts as ``pkg.mod`` when
    ``mod`` is a module of the project."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            node.body = []
        if not lazy and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            node.body = []
    out = set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
            if node.module.split(".")[0] in PACKAGES:
                base = REPO.joinpath(*node.module.split("."))
                names += [f"{node.module}.{a.name}" for a in node.names
                          if (base / f"{a.name}.py").exists() or (base / a.name / "__init__.py").exists()]
        out |= {n for n in names if n.split(".")[0] in PACKAGES}
    return out


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")


def _graph(lazy: bool = True) -> dict[str, set[str]]:
    """{module: the project modules it imports}, for every package module and every entry script (``lazy=False``:
    at import time only, leaving out imports inside functions)."""
    graph = {}
    paths = [p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py")]
    paths += [REPO / e for e in ENTRY_SCRIPTS if (REPO / e).is_file()]
    paths += [p for e in ENTRY_SCRIPTS if (REPO / e).is_dir() for p in (REPO / e).rglob("*.py")]
    for path in paths:
        graph[_module_name(path)] = _imports(path, lazy)
    return graph


def layer(module: str) -> int:
    """The layer of ``module``: that of its longest prefix in ``LAYERS``."""
    parts = module.split(".")
    for i in range(len(parts), 0, -1):
        if ".".join(parts[:i]) in LAYERS:
            return LAYERS[".".join(parts[:i])]
    raise AssertionError(f"{module} is in no layer: add its package to LAYERS")


def _top(module: str) -> str:
    return module.split(".")[0]


def _within(module: str, prefixes) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def test_every_module_has_a_layer():
    for m in _graph():
        layer(m)


def test_ground_floor_imports_nothing_of_the_project():
    bad = {m: sorted(d for d in deps if _top(d) != "dbcore") for m, deps in _graph().items() if _top(m) == "dbcore"}
    assert not {m: d for m, d in bad.items() if d}, bad


def test_diffusion_imports_only_the_ground_floor():
    bad = {m: sorted(d for d in deps if _top(d) not in ("dbcore", "diffusion"))
           for m, deps in _graph().items() if _top(m) == "diffusion"}
    assert not {m: d for m, d in bad.items() if d}, bad


def test_rewards_import_only_the_ground_floor():
    bad = {m: sorted(d for d in deps if _top(d) not in ("dbcore", "rewards"))
           for m, deps in _graph().items() if _top(m) == "rewards"}
    assert not {m: d for m, d in bad.items() if d}, bad


def test_blend_and_dpok_do_not_import_each_other():
    g = _graph()
    for a, b in (SIDE_BY_SIDE, SIDE_BY_SIDE[::-1]):
        bad = {m: sorted(i for i in deps if _top(i) == b) for m, deps in g.items() if _top(m) == a}
        assert not {m: d for m, d in bad.items() if d}, bad


def test_nothing_imports_upward():
    bad = sorted(f"{m} ({layer(m)}) -> {d} ({layer(d)})" for m, deps in _graph().items() for d in deps
                 if layer(d) > layer(m))
    assert not bad, bad


def test_only_front_doors_and_entry_scripts_import_a_front_door():
    bad = sorted(f"{m} -> {d}" for m, deps in _graph().items() for d in deps
                 if _within(d, FRONT_DOORS) and layer(m) < FRONT)
    assert not bad, bad


def test_toy_uses_blending_through_the_public_api_only():
    bad = sorted(f"{m} -> {d}" for m, deps in _graph().items() if _top(m) == "toy" for d in deps
                 if _top(d) in ("blend", "dpok", "diffusion_blend") and not _within(d, TOY_PUBLIC))
    assert not bad, bad


def test_the_table_itself():
    assert layer("dbcore.io") == GROUND < layer("diffusion.lora") < layer("rewards.jpeg") < layer("blend.sampler")
    assert layer("blend.sampler") == layer("dpok.trainer") < layer("blend.report") < layer("blend.cli")
    assert layer("blend.cli") < layer("scripts.paper_sweeps") and layer("blend.methods.mpa") == METHOD


def test_no_import_cycles_at_import_time():
    """No cycle among the imports a module runs when it is imported. (The method registry and ``blend.spec``
    still reach each other through imports inside functions: ``blend.methods.*`` build specs; issue #22.)"""
    g = {m: deps for m, deps in _graph(lazy=False).items() if _top(m) in PACKAGES}
    resolved = {m: {d if d in g else d.rsplit(".", 1)[0] for d in deps} & set(g) for m, deps in g.items()}
    state: dict[str, int] = {}

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for d in resolved[m]:
            if d == m or d == m.rsplit(".", 1)[0] or m == d.rsplit(".", 1)[0]:
                continue  # a package's own __init__, or an __init__ loading its modules
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


def test_the_project_does_not_import_its_own_public_package():
    """``diffusion_blend`` is the users' door on top (its old module names are shims over dbcore): the packages
    below import the ground floor directly, so no import arrow runs from them back up to it."""
    inside = ("dbcore", "diffusion", "rewards", "blend", "dpok", "toy", "theory")
    bad = sorted(f"{m} -> {d}" for m, deps in _graph().items() if _top(m) in inside for d in deps
                 if _top(d) == "diffusion_blend")
    assert not bad, bad
