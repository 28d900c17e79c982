"""The layering of ARCHITECTURE.md, read from the import graph: arrows run one way.

The engine (`prune_engine`) imports neither the UI nor the Streamlit-free layer
(`workbench`); the Streamlit-free layer imports no Streamlit and no UI; a page package
(`ui/<page>/`, every folder of `ui` but `shared`) imports no other page's package.
Imports are found with `ast`, relative ones resolved, so every form counts.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
UI_NAMES = ("streamlit", "ui", "pages", "app")
ENGINE_FORBIDDEN = (*UI_NAMES, "workbench")
SKIPPED_DIRS = {".venv", "__pycache__", ".git"}


def _python_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(path for path in folder.rglob("*.py") if not SKIPPED_DIRS & set(path.relative_to(ROOT).parts))


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(path: Path, module_name: str | None = None) -> Iterator[str]:
    """Every module `path` (the module `module_name`, by default from its place in the repository)
    imports, absolute; `from a import b` gives both `a` and `a.b`."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = (module_name or _module_name(path)).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            yield module
            yield from (f"{module}.{alias.name}" for alias in node.names if alias.name != "*")


def _is_within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def _violations(files: list[Path], forbidden: tuple[str, ...]) -> list[str]:
    return [
        f"{path.relative_to(ROOT)} imports {module}"
        for path in files
        for module in _imported(path)
        if any(_is_within(module, name) for name in forbidden)
    ]


def test_the_import_reader_resolves_every_form_of_import(tmp_path: Path) -> None:
    source = tmp_path / "view.py"
    source.write_text(
        "import streamlit as st\nfrom .. import compare\nfrom ..shared import state\nfrom . import widgets\n",
        encoding="utf-8",
    )
    imported = set(_imported(source, "ui.prune.view"))
    assert {"streamlit", "ui.compare", "ui.shared.state", "ui.prune.widgets"} <= imported


def test_the_engine_imports_neither_the_ui_nor_the_streamlit_free_layer() -> None:
    files = _python_files(ROOT / "prune_engine")
    assert files
    assert _violations(files, ENGINE_FORBIDDEN) == []


def test_the_streamlit_free_layer_imports_no_streamlit_and_no_ui() -> None:
    files = _python_files(ROOT / "workbench")
    assert files
    assert _violations(files, UI_NAMES) == []


def _page_packages() -> list[Path]:
    ui = ROOT / "ui"
    if not ui.is_dir():
        return []
    return sorted(path for path in ui.iterdir() if path.is_dir() and path.name not in {"shared", *SKIPPED_DIRS})


def test_the_shared_core_imports_no_page_package() -> None:
    pages = tuple(f"ui.{page.name}" for page in _page_packages())
    assert pages
    assert _violations(_python_files(ROOT / "ui" / "shared"), pages) == []


def test_no_page_package_imports_another_page_package() -> None:
    pages = _page_packages()
    assert len(pages) == 6
    found = []
    for page in pages:
        others = tuple(f"ui.{other.name}" for other in pages if other != page)
        found += _violations(_python_files(page), others) if others else []
    assert found == []
