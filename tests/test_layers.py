"""The layers of docs/architecture.md, checked over the import graph (AST, no imports run).

A module may import its own unit and the layers below it, never a layer above nor a sibling
unit of its own layer; no two modules may import each other, directly or round a loop.
Every module must belong to a unit, so a new package is placed on purpose.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

# Lowest first. Units of one layer are siblings: they do not import each other.
LAYERS: list[tuple[str, list[tuple[str, ...]]]] = [
    ("engine", [("alttext.describe",)]),
    (
        "core",
        [
            (
                "alttext",  # the package itself: __version__
                "alttext.config",
                "alttext.db",
                "alttext.sqlite_driver",
                "alttext.errors",
                "alttext.ids",
                "alttext.logging_setup",
                "alttext.mail",
                "alttext.migrate",
                "alttext.inflight",
                "alttext.idempotency",
                "alttext.scheduler",
                "alttext.runtime",
                "alttext.queue",
                "alttext.metrics",
                "alttext.result_cache",
            )
        ],
    ),
    ("domain: accounts", [("alttext.accounts",)]),
    (
        "domains: billing, usage, job records",
        [("alttext.billing",), ("alttext.usage",), ("alttext.jobstore",)],
    ),
    ("domain: privacy", [("alttext.privacy",)]),
    ("process", [("alttext.process", "alttext.models_registry", "alttext.dev_account")]),
    ("use case: generation", [("alttext.generation",), ("alttext.evaluation",)]),
    ("site tools", [("alttext.sitetools",)]),
    ("use case: jobs", [("alttext.jobs",)]),
    ("http plumbing", [("alttext.http",)]),
    (
        "surfaces",
        [("alttext.api",), ("alttext.web",), ("alttext.worker",), ("alttext.mcp",)],
    ),
    ("app factory", [("alttext.app", "alttext.migrations")]),
    ("entry point", [("alttext.cli", "alttext.__main__")]),
]


def _prefixed(module: str, prefix: str) -> bool:
    if prefix == "alttext":
        return module == "alttext"
    return module == prefix or module.startswith(prefix + ".")


def place(module: str) -> tuple[int, int]:
    """(layer, unit) of a module; the longest matching prefix wins."""
    best: tuple[int, int, int] | None = None
    for layer, (_, units) in enumerate(LAYERS):
        for unit, prefixes in enumerate(units):
            for prefix in prefixes:
                if _prefixed(module, prefix) and (best is None or len(prefix) > best[2]):
                    best = (layer, unit, len(prefix))
    if best is None:
        raise LookupError(f"{module} belongs to no layer: add it to LAYERS and the docs")
    return best[0], best[1]


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(source: str, module: str, known: set[str]) -> set[str]:
    """Modules of the package that ``source`` imports (at any depth, TYPE_CHECKING too)."""
    package = (
        module if module in known and _is_package(module, known) else module.rpartition(".")[0]
    )
    out: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.split(".")[0] == "alttext")
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            if base.split(".")[0] != "alttext":
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                out.add(sub if sub in known else base)
    out.discard(module)
    return out


def _is_package(module: str, known: set[str]) -> bool:
    return any(other.startswith(module + ".") for other in known)


def import_graph(root: Path) -> dict[str, set[str]]:
    files = {module_name(p, root): p for p in (root / "alttext").rglob("*.py")}
    known = set(files)
    return {m: imports_of(p.read_text(encoding="utf-8"), m, known) for m, p in files.items()}


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    problems = []
    for module, targets in sorted(graph.items()):
        layer, unit = place(module)
        for target in sorted(targets):
            t_layer, t_unit = place(target)
            if t_layer > layer:
                problems.append(f"{module} imports {target}, a higher layer")
            elif t_layer == layer and t_unit != unit:
                problems.append(f"{module} imports {target}, a sibling of its layer")
    return problems


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def package_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    def pkg(m: str) -> str:
        return ".".join(m.split(".")[:2])

    packages: dict[str, set[str]] = {}
    for module, targets in graph.items():
        packages.setdefault(pkg(module), set()).update(
            pkg(t) for t in targets if pkg(t) != pkg(module)
        )
    return cycles(packages)


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / (name.replace(".", "/") + ".py")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def _problems(graph: dict[str, set[str]]) -> Iterable[str]:
    yield from upward_imports(graph)
    yield from (" <-> ".join(c) for c in cycles(graph))
    yield from (" <-> ".join(c) for c in package_cycles(graph))


def test_every_module_has_a_layer() -> None:
    for module in import_graph(SRC):
        place(module)


def test_no_import_points_up_and_no_module_or_package_cycle() -> None:
    assert list(_problems(import_graph(SRC))) == []


def test_the_check_catches_an_upward_import_of_a_synthetic_module(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "alttext.__init__": "",
            "alttext.db": "",
            "alttext.describe.__init__": "",
            # The engine reaching for the database: two layers up.
            "alttext.describe.leaky": "from alttext.db import Base\n",
            "alttext.billing.__init__": "",
            "alttext.usage.__init__": "",
            # A domain reaching sideways, inside a function and through a relative import.
            "alttext.billing.spy": "def f():\n    from ..usage import meter\n",
            "alttext.usage.meter": "",
        },
    )
    problems = upward_imports(import_graph(tmp_path))
    assert problems == [
        "alttext.billing.spy imports alttext.usage.meter, a sibling of its layer",
        "alttext.describe.leaky imports alttext.db, a higher layer",
    ]


def test_the_check_catches_module_and_package_cycles(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "alttext.__init__": "",
            "alttext.usage.__init__": "",
            "alttext.usage.limits": "from alttext.usage import limits_redis\n",
            "alttext.usage.limits_redis": "from alttext.usage.limits import gcra\n",
            "alttext.api.__init__": "",
            "alttext.api.routes": "import alttext.generation.service\n",
            "alttext.generation.__init__": "",
            "alttext.generation.service": "from alttext.api import routes\n",
        },
    )
    graph = import_graph(tmp_path)
    assert cycles(graph) == [
        ["alttext.api.routes", "alttext.generation.service"],
        ["alttext.usage.limits", "alttext.usage.limits_redis"],
    ]
    assert package_cycles(graph) == [["alttext.api", "alttext.generation"]]
    assert "alttext.generation.service imports alttext.api.routes, a higher layer" in (
        upward_imports(graph)
    )


def test_an_unplaced_package_is_refused() -> None:
    with pytest.raises(LookupError, match="belongs to no layer"):
        place("alttext.newthing.models")
