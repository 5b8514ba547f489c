"""Every markdown document that the code, `--help`, warnings, scripts, configs or the docs cite is in this repository,
every link to a section of one names a heading it has, and the README stays short (issue #22, item 5).

A citation is any token ending in ``.md`` in a ``*.py`` (its strings and comments only), ``*.sh``, ``*.md``,
``*.toml``, ``*.txt`` or ``*.yaml`` file or ``.ci/run``. It must name a file relative to the citing file's folder or
to the repository root. The one exception is a file the code itself writes (a string joined onto a path with ``/``,
e.g. a run's summary table), when it is named bare or under a folder that is not in the repository."""

from __future__ import annotations

import ast
import fnmatch
import io
import re
import tokenize
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SUFFIXES = {".py", ".sh", ".md", ".toml", ".txt", ".yaml", ".yml"}
EXTRA_FILES = (".ci/run",)
README_MAX_LINES = 400
TOKEN = re.compile(r"(?<![\w./-])([\w.][\w./-]*?\w\.md)(?!\w)")
LINK = re.compile(r"\]\(([^)\s#]*?)(#[^)\s]*)?\)")


def _ignored_dir_patterns() -> list[str]:
    """Folder patterns of every .gitignore (lines ending in '/'), plus .git: outputs, the venv, caches."""
    patterns = [".git"]
    for gi in REPO.rglob(".gitignore"):
        if ".venv" in gi.relative_to(REPO).parts:
            continue
        patterns += [ln.strip().rstrip("/") for ln in gi.read_text().splitlines() if ln.strip().endswith("/")]
    return patterns


def _scanned_files() -> list[Path]:
    patterns = _ignored_dir_patterns()
    out = []
    for path in REPO.rglob("*"):
        rel = path.relative_to(REPO)
        if any(fnmatch.fnmatch(part, pat) for part in rel.parts[:-1] for pat in patterns):
            continue
        if path.is_file() and (path.suffix in SUFFIXES or rel.as_posix() in EXTRA_FILES):
            out.append(path)
    return sorted(out)


FILES = _scanned_files()


def _text_of(path: Path) -> str:
    """The part of a file that can cite: a Python file's strings and comments (not its attribute accesses)."""
    text = path.read_text(errors="replace")
    if path.suffix != ".py":
        return text
    parts = []
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type in (tokenize.STRING, tokenize.COMMENT) or tok.type == getattr(tokenize, "FSTRING_MIDDLE", -1):
            parts.append(tok.string)
    return "\n".join(parts)


def _written_names() -> set[str]:
    """``*.md`` names the code writes: string constants joined onto a path (``out / "summary.md"``)."""
    names = set()
    for path in FILES:
        if path.suffix != ".py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div) and isinstance(node.right, ast.Constant)
                    and isinstance(node.right.value, str) and node.right.value.endswith(".md")):
                names.add(node.right.value)
    return names


def _resolves(path: Path, token: str, written: set[str]) -> bool:
    if (path.parent / token).is_file() or (REPO / token.lstrip("/")).is_file():
        return True
    folder, _, name = token.rpartition("/")
    return name in written and (not folder.strip("/") or not (REPO / folder.strip("/")).is_dir())


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(md: Path) -> set[str]:
    seen: dict[str, int] = {}
    fence = False
    for line in md.read_text().splitlines():
        if line.lstrip().startswith("```"):
            fence = not fence
        elif not fence and (m := re.match(r"#{1,6} (.*)", line)):
            base = _slug(m[1])
            n = seen.get(base, 0)
            seen[base] = n + 1
            yield base if n == 0 else f"{base}-{n}"


def test_scan_covers_code_and_docs():
    rel = {p.relative_to(REPO).as_posix() for p in FILES}
    assert {"README.md", "run_DB.py", ".ci/run", "requirements.txt", "pyproject.toml", "docs/method.md"} <= rel
    assert not any(r.startswith((".venv/", "outputs/", ".git/")) for r in rel)


def test_token_rules(tmp_path):
    found = TOKEN.findall("see docs/method.md §2, ../README.md#layout, `rewards/README.md`. {name}.md "
                          "https://github.com/o/r/blob/main/README.md")
    assert found == ["docs/method.md", "../README.md", "rewards/README.md"]
    code = tmp_path / "m.py"  # in Python only strings and comments cite, not attribute accesses
    code.write_text('x = README.md  # see docs/method.md\ny = f"{name}.md and docs/design.md"\n')
    assert TOKEN.findall(_text_of(code)) == ["docs/method.md", "docs/design.md"]


def test_every_cited_markdown_file_is_in_the_repository():
    written = _written_names()
    assert {"summary.md", "table.md"} <= written
    missing = []
    for path in FILES:
        for token in sorted(set(TOKEN.findall(_text_of(path)))):
            if not _resolves(path, token, written):
                missing.append(f"{path.relative_to(REPO)}: {token}")
    assert not missing, "cited documents that are not in the repository:\n" + "\n".join(missing)


def test_every_markdown_link_to_a_section_names_a_heading():
    broken = []
    for md in (p for p in FILES if p.suffix == ".md"):
        for target, anchor in LINK.findall(md.read_text()):
            if target.startswith(("http://", "https://")) or not (target.endswith(".md") or (not target and anchor)):
                continue
            doc = (md.parent / target) if target else md
            if not doc.is_file():
                broken.append(f"{md.relative_to(REPO)}: {target} (no such file)")
            elif anchor and anchor[1:] not in set(_anchors(doc)):
                broken.append(f"{md.relative_to(REPO)}: {target}{anchor} (no such heading)")
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_readme_is_short():
    n = len((REPO / "README.md").read_text().splitlines())
    assert n <= README_MAX_LINES, f"README.md has {n} lines; move detail into docs/ (at most {README_MAX_LINES})"
