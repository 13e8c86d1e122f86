"""The README and docs/ against the code: docs/package.md's module table (every module, and the layers the imports
keep), its stable API (lrdm.__all__), its command list (lrdm --help) and its tests rule (tests/); the README an
entry point that names every page; every relative link resolving."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import lrdm
from lrdm.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "lrdm"
README = ROOT / "README.md"
PAGES = sorted((ROOT / "docs").glob("*.md"))
PACKAGE_PAGE = (ROOT / "docs" / "package.md").read_text()
LAYER_RULE = "**A module imports only modules of its own layer or of a lower layer**"
"""The layering sentence of docs/package.md, which the layer test below holds the code to."""
README_MAX_LINES = 300
"""The README is an entry point (about 250 lines); the rest lives under docs/."""


def section(text: str, heading: str) -> str:
    """The text under ``## heading`` up to the next ``## `` heading."""
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def module_table() -> list[tuple[int, str, str]]:
    """docs/package.md's rows: (layer, path such as ``lrdm/core/`` or ``lrdm/vocab.py``, what it holds)."""
    rows = re.findall(r"^\| (\d+) \| `(lrdm/[^`]+)` \| (.*) \|$", section(PACKAGE_PAGE, "Layers and modules"), re.M)
    assert rows, "docs/package.md has no module table"
    return [(int(layer), path, holds) for layer, path, holds in rows]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, ast.Module]:
    return {module_name(p): ast.parse(p.read_text(), filename=str(p)) for p in sorted(PACKAGE.rglob("*.py"))}


def layers() -> dict[str, int]:
    """Layer of each row of the table, by module prefix (``lrdm.core``, ``lrdm.vocab``)."""
    return {path.removesuffix("/").removesuffix(".py").replace("/", "."): layer for layer, path, _ in module_table()}


def layer_of(module: str, table: dict[str, int]) -> int:
    for prefix in sorted(table, key=len, reverse=True):
        if module == prefix or module.startswith(prefix + "."):
            return table[prefix]
    raise AssertionError(f"{module} is in no row of docs/package.md's module table")


def test_package_page_states_the_layer_rule_it_is_checked_against():
    assert LAYER_RULE in PACKAGE_PAGE


def test_module_table_names_every_module_and_only_existing_ones():
    rows = {path: holds for _, path, holds in module_table()}
    missing = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if relative.parts == ("__init__.py",):
            continue
        if len(relative.parts) == 1:
            if f"lrdm/{relative}" not in rows:
                missing.append(f"lrdm/{relative}")
            continue
        holds = rows.get(f"lrdm/{relative.parts[0]}/")
        names = [*relative.parts[1:-1], relative.stem] if relative.stem != "__init__" else list(relative.parts[1:-1])
        if holds is None or not all(re.search(rf"`{re.escape(n)}/?`", holds) for n in names):
            missing.append(str(path.relative_to(ROOT)))
    assert not missing, f"docs/package.md's module table does not name {missing}"
    stale = [path for path in rows if not (ROOT / path).exists()]
    assert not stale, f"docs/package.md's module table names what does not exist: {stale}"


def test_imports_keep_the_layers_of_the_module_table():
    table = layers()
    bad = []
    for module, tree in modules().items():
        if module == "lrdm":
            continue  # the top-level package loads the public API lazily
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                targets = [node.module or ""]
            else:
                continue
            for target in targets:
                if target.startswith("lrdm.") and layer_of(target, table) > layer_of(module, table):
                    bad.append(f"{module} (layer {layer_of(module, table)}) imports {target}")
    assert not bad, bad


def test_the_layer_check_fails_on_an_upward_import():
    table = layers()
    assert layer_of("lrdm.cli", table) > layer_of("lrdm.core.sampling", table) > layer_of("lrdm.vocab", table)
    assert layer_of("lrdm.vocab", table) == layer_of("lrdm.errors", table)  # vocab imports errors: one layer


def test_stable_api_list_equals_lrdm_all():
    listed = re.findall(r"^- `lrdm\.(\w+)`$", section(PACKAGE_PAGE, "The stable API"), re.M)
    assert listed == sorted(listed, key=list(lrdm.PUBLIC_API).index)
    assert sorted(listed) == lrdm.__all__
    docstring = lrdm.__doc__ or ""
    assert all(f"``lrdm.{name}``" in docstring for name in lrdm.__all__), "lrdm/__init__.py's docstring"


def test_command_list_equals_lrdm_help():
    listed = re.findall(r"^- `lrdm ([\w-]+)`$", section(PACKAGE_PAGE, "The `lrdm` command"), re.M)
    subparsers = next(a for a in build_parser()._actions if a.dest == "command")  # noqa: SLF001 - argparse's own
    assert listed == list(subparsers.choices)


def test_tests_follow_the_stated_rule():
    rule = section(PACKAGE_PAGE, "The tests")
    whole = set(re.findall(r"`(test_\w+)\.py`", rule))
    subpackages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    top_modules = {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    bad = []
    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        relative = path.relative_to(ROOT / "tests")
        if len(relative.parts) == 1:
            if path.stem.removeprefix("test_") not in top_modules and path.stem not in whole:
                bad.append(f"{relative}: names no top-level module and is not among the tests of the whole")
        elif relative.parts[0] not in subpackages or len(relative.parts) > 2:
            bad.append(f"{relative}: tests/{relative.parts[0]}/ is not a folder of lrdm/")
    assert not bad, bad
    for name in whole:
        assert (ROOT / "tests" / f"{name}.py").is_file(), name


def test_readme_is_an_entry_point_naming_every_page():
    text = README.read_text()
    assert len(text.splitlines()) <= README_MAX_LINES
    pages = set(re.findall(r"\]\((docs/[\w-]+\.md)\)", section(text, "Where to go next")))
    assert pages == {f"docs/{page.name}" for page in PAGES}
    assert "config/README.md" in section(text, "Where to go next")


@pytest.mark.parametrize("page", [README, ROOT / "config" / "README.md", *PAGES], ids=lambda p: p.name)
def test_relative_links_resolve(page):
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text())
    broken = [link for link in links if "://" not in link and not (page.parent / link).exists()]
    assert not broken, f"{page.relative_to(ROOT)}: {broken}"
