"""Imports point one way (ARCHITECTURE.md, "Apps and the direction of imports").

Every import in the apps' modules is read from their source (those inside functions too, which
is where a circle hides), and the rules are checked on the module graph: the event log imports
no app; annotation imports neither attacks, generation nor evaluation; nothing imports
evaluation or demo; no import circle between modules. modelserve is to import no app but the
event log: what it still imports of annotation is listed here, and the list may only shrink.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
APPS = ("config", "eventlog", "annotation", "attacks", "modelserve", "evaluation", "demo", "generation")

# modelserve's remaining imports of annotation (the generator and the training manifest are
# still in modelserve; the admin and API use annotation's roles): to be moved, not added to
MODELSERVE_STILL_IMPORTS_ANNOTATION = {
    "modelserve.admin", "modelserve.api", "modelserve.generation_jobs",
    "modelserve.interface", "modelserve.manifest", "modelserve.training_jobs", "modelserve.views",
}


def project_modules() -> dict[str, Path]:
    found = {}
    for app in APPS:
        for path in (ROOT / app).rglob("*.py") if (ROOT / app).is_dir() else ():
            if "migrations" in path.parts:
                continue
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imported_names(name: str, path: Path) -> set[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            names |= {f"{base}.{alias.name}" for alias in node.names} | {base}
    return names


def module_graph() -> dict[str, set[str]]:
    modules = project_modules()

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for name, path in modules.items():
        targets = {resolve(n) for n in imported_names(name, path) if n.split(".")[0] in APPS}
        graph[name] = {t for t in targets if t and t != name and not name.startswith(t + ".")}
    return graph


def app(module: str) -> str:
    return module.split(".")[0]


def importers(graph, of_app: str) -> set[tuple[str, str]]:
    return {(m, t) for m, targets in graph.items() for t in targets if app(t) == of_app and app(m) != of_app}


def test_the_event_log_imports_no_app():
    graph = module_graph()
    assert {(m, t) for m, ts in graph.items() if app(m) == "eventlog" for t in ts
            if app(t) not in ("eventlog", "config")} == set()


def test_annotation_imports_neither_attacks_generation_nor_evaluation():
    graph = module_graph()
    assert {(m, t) for m, ts in graph.items() if app(m) == "annotation" for t in ts
            if app(t) in ("attacks", "generation", "evaluation", "demo")} == set()


def test_nothing_imports_evaluation_or_the_demo():
    graph = module_graph()
    assert importers(graph, "evaluation") == set()
    assert importers(graph, "demo") == set()


def test_modelserve_imports_no_app_but_the_event_log_except_what_is_listed():
    graph = module_graph()
    outside = {(m, t) for m, ts in graph.items() if app(m) == "modelserve" for t in ts
               if app(t) not in ("modelserve", "eventlog", "config")}
    assert {t for _, t in outside if app(t) != "annotation"} == set()
    assert {m for m, _ in outside} == MODELSERVE_STILL_IMPORTS_ANNOTATION


def test_no_import_circle():
    graph = module_graph()
    index, low, stack, on_stack, circles = {}, {}, [], set(), []

    def visit(node):  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    assert circles == []


def test_the_scan_sees_imports_inside_functions():
    graph = module_graph()
    assert "eventlog.projections" in graph["eventlog.apps"] or "eventlog.readmodels" in graph["eventlog.apps"]
    assert "modelserve.inference" in graph["modelserve.interface"]  # imported where a model is loaded
