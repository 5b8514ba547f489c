"""What ``run_DB.py --list_rewards`` prints, read from the reward modules' source without importing them.

Importing a reward module imports torch (seconds); listing the rewards must not. Every reward is
registered with ``@register("name", scale=..., description=..., ...)`` and literal arguments (plain
strings, or f-strings of module-level string constants), so the catalogue is read from the syntax
tree. ``tests/test_rewards_catalog.py`` checks that it equals the live registry.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

REWARD_MODULES = ("aesthetic", "clip_score", "hps", "image_reward", "jpeg", "pickscore", "pixel_stats", "toy", "vila")
_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    scale: str
    description: str
    differentiable: bool = False
    needs: str = "nothing (weight-free)"


class _NotLiteral(ValueError):
    pass


def _value(node: ast.AST, consts: dict[str, object]):
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name) and node.id in consts:
        return consts[node.id]
    if isinstance(node, ast.JoinedStr):
        out = []
        for part in node.values:
            if isinstance(part, ast.Constant):
                out.append(str(part.value))
            elif isinstance(part, ast.FormattedValue) and part.format_spec is None and part.conversion == -1:
                out.append(str(_value(part.value, consts)))
            else:
                raise _NotLiteral(ast.dump(part))
        return "".join(out)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _value(node.left, consts) + _value(node.right, consts)
    raise _NotLiteral(ast.dump(node))


def _entries(path: Path) -> list[CatalogEntry]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    consts: dict[str, object] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                consts[node.targets[0].id] = _value(node.value, consts)
            except _NotLiteral:
                pass
    out = []
    for node in ast.walk(tree):
        for deco in getattr(node, "decorator_list", []):
            if isinstance(deco, ast.Call) and isinstance(deco.func, ast.Name) and deco.func.id == "register":
                kwargs = {kw.arg: _value(kw.value, consts) for kw in deco.keywords}
                out.append(CatalogEntry(_value(deco.args[0], consts), **kwargs))
    return out


def reward_catalog() -> list[CatalogEntry]:
    """Every registered reward's name, scale, description, differentiability and needs, sorted by name.

    Falls back to the live registry (importing torch) if a registration is not written with literals.
    """
    try:
        entries = [e for mod in REWARD_MODULES for e in _entries(_DIR / f"{mod}.py")]
    except _NotLiteral:
        from rewards import list_rewards

        return [CatalogEntry(i.name, i.scale, i.description, i.differentiable, i.needs) for i in list_rewards()]
    return sorted(entries, key=lambda e: e.name)
