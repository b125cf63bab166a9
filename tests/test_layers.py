"""The package's import graph has no cycles (issue 15), counting imports inside functions too: a
lazy import that closes a cycle only hides it."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "siptool"


def _module(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def graph() -> dict[str, set[str]]:
    modules = {_module(p): p for p in PACKAGE.rglob("*.py")}
    edges: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.ImportFrom):
                base = package
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0]
                mod = f"{base}.{node.module}" if node.level and node.module else (node.module or base)
                targets = [mod] + [f"{mod}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            for t in targets:
                if t in modules and t != name and not name.startswith(t + "."):  # a package's own __init__
                    edges[name].add(t)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    found, state, stack = [], {}, []

    def visit(m: str) -> None:
        state[m] = "open"
        stack.append(m)
        for n in sorted(edges[m]):
            if state.get(n) == "open":
                found.append(stack[stack.index(n):] + [n])
            elif n not in state:
                visit(n)
        stack.pop()
        state[m] = "done"

    for m in sorted(edges):
        if m not in state:
            visit(m)
    return found


def test_no_import_cycles():
    assert cycles(graph()) == []


# Data flows one way (docs/architecture.md): capture -> sip/sdp/rtp -> analysis -> report -> drivers and
# renderers -> commands. What each layer must never import, functions' imports included.
ABOVE = {
    "siptool.capture": ("siptool.sip", "siptool.sdp", "siptool.analysis", "siptool.report", "siptool.drivers",
                        "siptool.agent", "siptool.check", "siptool.commands"),
    "siptool.sip": ("siptool.analysis", "siptool.report", "siptool.drivers", "siptool.agent", "siptool.check",
                    "siptool.commands"),
    "siptool.rtp": ("siptool.sip", "siptool.analysis", "siptool.report", "siptool.drivers", "siptool.agent",
                    "siptool.check", "siptool.commands"),
    "siptool.analysis": ("siptool.drivers", "siptool.agent", "siptool.check", "siptool.commands"),
    "siptool.report": ("siptool.analysis", "siptool.drivers", "siptool.agent", "siptool.check",
                       "siptool.commands", "siptool.capture"),
    "siptool.drivers": ("siptool.agent", "siptool.check", "siptool.commands"),
}
# The agent's typed events (agent/events.py: types only) are what its renderers read (report/agent_view.py).
PUBLISHED = {"siptool.agent.events"}


def test_data_flows_one_way():
    """sip/ builds no report objects, analysis/ does not reach the drivers, renderers compute from the
    Report alone (they import no analysis), drivers know no commands."""
    found = []
    for module, targets in graph().items():
        for layer, banned in ABOVE.items():
            if module == layer or module.startswith(layer + "."):
                found += [f"{module} imports {t}" for t in sorted(targets - PUBLISHED)
                          if any(t == b or t.startswith(b + ".") for b in banned)]
    assert found == [], found


IMPORT_NAMES = {"rich": "rich", "typer": "typer", "numpy": "numpy", "matplotlib": "matplotlib",
                "prometheus-client": "prometheus_client", "dnspython": "dns"}


def test_every_runtime_dependency_is_imported_by_the_runtime():
    import re
    import tomllib

    project = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["project"]
    names = [re.split(r"[<>=!~\[ ;]", d, maxsplit=1)[0].lower() for d in project["dependencies"]]
    imported = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    unused = [n for n in names if IMPORT_NAMES.get(n, n) not in imported]
    assert unused == [], f"declared for the runtime but never imported by siptool/: {unused}"


# Memo tables of values derived from constants (the same for every caller), allowed to fill lazily.
MEMO_TABLES = {"siptool.report.jsonout._FIELDS", "siptool.report.jsonout._OMIT", "siptool.rtp.g711._tables"}
MUTATORS = {"append", "extend", "insert", "add", "update", "setdefault", "pop", "popitem", "clear", "remove",
            "discard"}


def test_no_module_state():
    """No `global`, and no module-level dict, list or set that a function fills or changes: options and
    thresholds are passed in, and per-run state lives on the objects doing the run (issue 15)."""
    found = []
    for path in PACKAGE.rglob("*.py"):
        module = _module(path)
        tree = ast.parse(path.read_text())
        containers = set()
        for node in tree.body:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target] \
                if isinstance(node, ast.AnnAssign) and node.value is not None else []
            value = getattr(node, "value", None)
            mutable = isinstance(value, (ast.Dict, ast.List, ast.Set, ast.DictComp, ast.ListComp, ast.SetComp)) or (
                isinstance(value, ast.Call) and isinstance(value.func, ast.Name)
                and value.func.id in ("dict", "list", "set", "defaultdict", "OrderedDict", "deque"))
            if mutable:
                containers |= {t.id for t in targets if isinstance(t, ast.Name)}
        for fn in (n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))):
            for node in ast.walk(fn):
                if isinstance(node, ast.Global):
                    found.append(f"{module}.{fn.name}: global {', '.join(node.names)}")
                name = None
                if isinstance(node, ast.Subscript) and isinstance(node.ctx, (ast.Store, ast.Del)):
                    name = getattr(node.value, "id", None)
                elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                        and node.func.attr in MUTATORS:
                    name = getattr(node.func.value, "id", None)
                if name in containers and f"{module}.{name}" not in MEMO_TABLES \
                        and not _local(fn, name):
                    found.append(f"{module}.{fn.name} changes module-level {name}")
    assert found == [], found


def _local(fn, name: str) -> bool:
    """The function binds `name` itself (a local shadowing the module's)."""
    args = fn.args
    if name in {a.arg for a in args.args + args.kwonlyargs + args.posonlyargs}:
        return True
    return any(isinstance(n, ast.Name) and n.id == name and isinstance(n.ctx, ast.Store) for n in ast.walk(fn))
