"""The library never imports the dashboard: no streamlit and no pages/ module anywhere in
safety_models/, and presentation/ builds only from the layers below the service."""

from __future__ import annotations

import ast
from pathlib import Path

LIBRARY = Path(__file__).resolve().parents[2] / "safety_models"


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside a function."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def test_no_library_module_imports_streamlit_or_the_pages():
    offenders = {str(path.relative_to(LIBRARY)): sorted(
                     name for name in imported_modules(path)
                     if name.split(".")[0] in ("streamlit", "pages"))
                 for path in LIBRARY.rglob("*.py")}
    assert {path: names for path, names in offenders.items() if names} == {}


def test_presentation_does_not_reach_up_to_the_service_or_the_cli():
    for path in (LIBRARY / "presentation").glob("*.py"):
        upward = [name for name in imported_modules(path)
                  if name.startswith(("safety_models.service", "safety_models.cli"))]
        assert upward == [], f"{path.name} imports {upward}"
