"""The layers of docs/architecture.md, checked on the source: every import of every module
(at module level and inside functions) read with `ast`, nothing imported or run.

    entry        cli, __main__
    app          service (workflows < forecasts < queue < jobs < workers < operations),
                 presentation (may use service)
    evaluation   evaluation.backtest, evaluation.study
    modeling     modeling.*
    measures     evaluation.metrics, evaluation.baselines
    data         data.*, grid, features
    foundation   schema, errors, paths, files, units

A module imports only from its own layer or those below; the library never imports
streamlit or the dashboard; no two library modules import each other, directly or round a
longer loop. The dashboard (app.py, pages/) sits on top and should go through the service and
presentation layers; the shortcuts it still takes are listed (PAGES_SHORTCUTS) so that the
list only shrinks.
"""

from __future__ import annotations

import ast
from functools import lru_cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LIBRARY = REPO / "safety_models"
PACKAGE = "safety_models"

# Lowest first. A module belongs to the layer of its longest matching prefix.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("foundation", ("schema", "errors", "paths", "files", "units")),
    ("data", ("data", "grid", "features")),
    ("measures", ("evaluation.metrics", "evaluation.baselines")),
    ("modeling", ("modeling",)),
    ("evaluation", ("evaluation.backtest", "evaluation.study")),
    ("app", ("service", "presentation")),
    ("entry", ("cli", "__main__")),
)
# Inside the service layer, each module imports only those before it: forecasts precompute
# what workflow steps make, jobs run workflow steps, operations orchestrate them all; a
# workflow step never starts or reads a job. Roles, accounts and the audit trail come first
# (a job writes its end to the trail); actions, which check the role and audit every change,
# wrap everything before them.
SERVICE_ORDER = ("service.access", "service.accounts", "service.audit", "service.workflows",
                 "service.forecasts", "service.queue", "service.jobs", "service.workers",
                 "service.operations", "service.actions")
# What the pages may use besides the service and presentation layers and the foundation.
# Each entry is a shortcut past the service layer, to be replaced by a service call.
PAGES_SHORTCUTS = frozenset({"data.store", "data.ingest", "grid", "modeling.registry",
                             "modeling.training", "evaluation.backtest", "evaluation.study"})


def module_name(path: Path) -> str:
    """safety_models/modeling/city.py -> 'modeling.city'; a package's __init__ -> its name
    ('' for the library's own)."""
    parts = list(path.relative_to(LIBRARY).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES: dict[str, Path] = {module_name(p): p for p in sorted(LIBRARY.rglob("*.py"))}
PACKAGES = {name for name, path in MODULES.items() if path.name == "__init__.py"}


def _resolve(target: str) -> str | None:
    """The library module an absolute dotted import names ('safety_models.grid' -> 'grid'),
    None outside the library."""
    if target != PACKAGE and not target.startswith(PACKAGE + "."):
        return None
    name = target[len(PACKAGE) + 1:]
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name


@lru_cache(maxsize=None)
def imports_of(path: Path, name: str) -> list[tuple[str, int]]:
    """(imported name as written, line) for every import in the file, wherever it is.
    Relative imports are made absolute; `from package import module` names the module."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = name if name in PACKAGES else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = ".".join(filter(None, [PACKAGE, *package.split(".")]))
                anchor = anchor.rsplit(".", node.level - 1)[0] if node.level > 1 else anchor
                base = ".".join(filter(None, [anchor, base]))
            for alias in node.names:
                found.append((f"{base}.{alias.name}", node.lineno))
    return found


def library_imports(name: str) -> list[tuple[str, int]]:
    """(library module, line) for every library import of a library module, itself excluded."""
    out = []
    for target, line in imports_of(MODULES[name], name):
        module = _resolve(target)
        if module is not None and module != name and (module or name):
            out.append((module, line))
    return out


def layer_of(name: str) -> int:
    """Index into LAYERS; a package (its __init__) counts as its lowest member's layer."""
    best = None
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if name == prefix or name.startswith(prefix + "."):
                if best is None or len(prefix) > best[1]:
                    best = (index, len(prefix))
    if best is not None:
        return best[0]
    members = [m for m in MODULES if m != name and (not name or m.startswith(name + "."))]
    if name in PACKAGES and members:
        return min(layer_of(m) for m in members)
    raise AssertionError(f"safety_models/{name.replace('.', '/') or '__init__'}.py is in no "
                         "layer: add it to LAYERS here and to docs/architecture.md")


def describe(name: str) -> str:
    return f"{PACKAGE}.{name}" if name else PACKAGE


def test_every_module_has_a_layer():
    for name in MODULES:
        layer_of(name)


def test_imports_point_down_the_layers():
    wrong = []
    for name in MODULES:
        for module, line in library_imports(name):
            if layer_of(module) > layer_of(name):
                wrong.append(f"{describe(name)}:{line} ({LAYERS[layer_of(name)][0]}) imports "
                             f"{describe(module)} ({LAYERS[layer_of(module)][0]})")
    assert not wrong, "imports up the layers:\n" + "\n".join(wrong)


def test_service_modules_import_only_those_before_them():
    missing = [name for name in SERVICE_ORDER if name not in MODULES]
    assert not missing, f"SERVICE_ORDER names modules that do not exist: {missing}"
    wrong = []
    for position, name in enumerate(SERVICE_ORDER):
        for module, line in library_imports(name):
            if module in SERVICE_ORDER[position + 1:]:
                wrong.append(f"{describe(name)}:{line} imports {describe(module)}")
    assert not wrong, "\n".join(wrong)


def test_the_service_does_not_use_presentation():
    """Presentation may call the service (same layer); the service never draws or exports."""
    wrong = [f"{describe(name)}:{line} imports {describe(module)}"
             for name in MODULES if name.startswith("service.")
             for module, line in library_imports(name) if module.startswith("presentation")]
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles():
    graph = {name: {m for m, _ in library_imports(name)} for name in MODULES}
    cycles = []
    # Tarjan's strongly connected components: a component of more than one module is a cycle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for name in sorted(graph):
        if name not in index:
            visit(name)
    assert not cycles, "modules that import each other: " + "; ".join(
        " <-> ".join(describe(m) for m in cycle) for cycle in cycles)


@pytest.mark.parametrize("forbidden", ["streamlit", "pages", "app"])
def test_the_library_never_imports_the_dashboard(forbidden):
    wrong = [f"{describe(name)}:{line} imports {target}"
             for name, path in MODULES.items() for target, line in imports_of(path, name)
             if target == forbidden or target.startswith(forbidden + ".")]
    assert not wrong, "\n".join(wrong)


def dashboard_imports() -> dict[str, list[str]]:
    """Library module -> the dashboard files (app.py, pages/*.py) that import it."""
    used: dict[str, list[str]] = {}
    for path in [REPO / "app.py", *sorted((REPO / "pages").glob("*.py"))]:
        for target, line in imports_of(path, ""):
            module = _resolve(target)
            if module is not None:
                used.setdefault(module, []).append(f"{path.relative_to(REPO)}:{line}")
    return used


def test_pages_go_through_the_service_and_presentation_layers():
    allowed_layers = {0, layer_of("service")}
    shortcuts = {module: where for module, where in dashboard_imports().items()
                 if layer_of(module) not in allowed_layers}
    new = {m: w for m, w in shortcuts.items() if m not in PAGES_SHORTCUTS}
    assert not new, ("pages reach past the service layer (call a service function instead): "
                     + "; ".join(f"{describe(m)} from {', '.join(w)}" for m, w in new.items()))
    gone = PAGES_SHORTCUTS - set(shortcuts)
    assert not gone, f"no page uses these any more; drop them from PAGES_SHORTCUTS: {sorted(gone)}"


def test_the_checks_see_imports_inside_functions():
    """The import of jobs inside a function of cli.py is found (a guard on the parser)."""
    assert ("service.jobs" in {m for m, _ in library_imports("cli")}
            and "service.workflows" in {m for m, _ in library_imports("service.jobs")})
