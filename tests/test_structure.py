"""The package's structure, checked from the source: the import direction toolchain ->
exporters -> runtime, no import cycles, and no task-name comparisons outside the tasks.

Imports are read with `ast` wherever they stand (module level, inside functions, under
TYPE_CHECKING), so a lazy import counts as much as an eager one.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lstm_edge.runtime.tasks import TASKS

ROOT = Path(__file__).resolve().parents[1]
# Folder -> package, as pyproject.toml's package-dir maps them; the rank is the layer:
# a module may import its own layer and the ones below, never one above.
LAYERS = {"runtime": ("lstm_edge.runtime", 0), "exporters": ("lstm_edge.exporters", 1),
          "toolchain": ("lstm_edge.toolchain", 2)}  # fmt: skip
# Third-party packages only the toolchain may use (the runtime and exporters deploy and
# run without the training stack).
TOOLCHAIN_ONLY = ("torch",)
TASK_FOLDERS = ("runtime/tasks", "toolchain/tasks")  # where task names may be compared
TASK_NAMES = frozenset(TASKS)


# ---- reading the source -------------------------------------------------------------------


def source_files() -> Iterator[tuple[str, str]]:
    """(path relative to the repo, module name) of every module of the package."""
    for folder, (package, _) in LAYERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            yield path.relative_to(ROOT).as_posix(), ".".join([package, *parts])


MODULES = dict(source_files())  # path -> module
PATHS = {module: path for path, module in MODULES.items()}


def parse(path: str) -> ast.Module:
    return ast.parse((ROOT / path).read_text(encoding="utf-8"), filename=path)


def _type_checking_only(tree: ast.Module) -> set[int]:
    """ids of the import nodes under `if TYPE_CHECKING:` (never run)."""
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return skipped


def imports(path: str, *, typing_only: bool = True) -> list[tuple[int, str]]:
    """(line, imported name) for every import in the file, wherever it stands (with
    `typing_only=False`, not those under TYPE_CHECKING). For `from a.b import c` the name is
    "a.b.c" when that is a module of the package, else "a.b". Relative imports are resolved
    against the file's package."""
    found: dict[tuple[int, str], None] = {}
    for line, name in _imports(path, typing_only):
        found[line, name] = None
    return list(found)


def _imports(path: str, typing_only: bool) -> Iterator[tuple[int, str]]:
    module = MODULES[path]
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    tree = parse(path)
    skipped = set() if typing_only else _type_checking_only(tree)
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                yield node.lineno, full if full in PATHS else base


def layer_of(name: str) -> int | None:
    for package, rank in LAYERS.values():
        if name == package or name.startswith(package + "."):
            return rank
    if name.split(".")[0] in TOOLCHAIN_ONLY:
        return LAYERS["toolchain"][1]
    return None


# ---- (a) the import direction -------------------------------------------------------------


def layer_violations(path: str) -> list[str]:
    own = layer_of(MODULES[path])
    return [
        f"{path}:{line}: imports {name}"
        for line, name in imports(path)
        if (rank := layer_of(name)) is not None and rank > own
    ]


@pytest.mark.parametrize("path", sorted(MODULES))
def test_imports_point_down_toolchain_exporters_runtime(path):
    found = layer_violations(path)
    assert not found, "an import against toolchain -> exporters -> runtime:\n" + "\n".join(found)


# ---- (b) no import cycles -----------------------------------------------------------------


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports when run (module level and lazy alike;
    not those under TYPE_CHECKING, which never run)."""
    graph: dict[str, set[str]] = {}
    for path, module in MODULES.items():
        names = imports(path, typing_only=False)
        graph[module] = {name for _, name in names if name in PATHS and name != module}
    return graph


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm: the components with more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
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


def cycle_path(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """One cycle through the component's first module, as a path back to it."""
    start, members = component[0], set(component)
    paths = {start: [start]}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(graph[v] & members):
            if w == start:
                return [*paths[v], start]
            if w not in paths:
                paths[w] = [*paths[v], w]
                queue.append(w)
    raise AssertionError(f"no cycle through {start}")  # a component always has one


def test_no_import_cycles():
    graph = import_graph()
    cycles = [
        " -> ".join(f"{m} ({PATHS[m]})" for m in cycle_path(graph, c)) + f"; all of {c}"
        for c in strongly_connected(graph)
    ]
    assert not cycles, "import cycles (lazy imports count):\n" + "\n".join(cycles)


# ---- (c) no task-name comparisons outside the tasks ----------------------------------------


def _is_task_name(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant):
        return node.value in TASK_NAMES
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return any(_is_task_name(e) for e in node.elts)
    return False


def _is_task_attr(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "task"


# The spec objects of the registry by their module-level names (CHAR_LM, FORECAST):
# `config.spec is FORECAST` is a branch on the task as much as `task == "forecast"`.
SPEC_NAMES = frozenset(
    name
    for module in {type(spec).__module__ for spec in TASKS.values()}
    for name, value in vars(sys.modules[module]).items()
    if any(value is spec for spec in TASKS.values())
)


def _is_spec_object(node: ast.AST) -> bool:
    name = node.id if isinstance(node, ast.Name) else getattr(node, "attr", None)
    return name in SPEC_NAMES


def _branches_on_a_task(operands: list[ast.AST]) -> bool:
    """A comparison that singles out a task: one operand is a task name or a registry
    spec object, or a `.task` is compared with a string. Comparing two tasks with each
    other (`resumed.task != given.task`) or with the registry (`task in TASKS`) is not."""
    if any(_is_task_name(o) or _is_spec_object(o) for o in operands):
        return True
    strings = any(isinstance(o, ast.Constant) and isinstance(o.value, str) for o in operands)
    return strings and any(_is_task_attr(o) for o in operands)


def task_name_uses(path: str) -> list[str]:
    """Where the file singles out a task: `x == "char-lm"`, `x in ("forecast", ...)`,
    `config.task != "..."`, `spec is FORECAST`, `match ...: case "forecast"`, or a dict
    keyed by task names."""
    found = []
    for node in ast.walk(parse(path)):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            if _branches_on_a_task(operands):
                found.append(f"{path}:{node.lineno}: compares a task name")
        elif isinstance(node, ast.Dict):
            if any(k is not None and _is_task_name(k) for k in node.keys):
                found.append(f"{path}:{node.lineno}: a dict keyed by task names")
        elif isinstance(node, ast.MatchValue) and _is_task_name(node.value):
            found.append(f"{path}:{node.lineno}: matches a task name")
    return found


SCANNED = sorted(p for p in MODULES if not p.startswith(TASK_FOLDERS))


@pytest.mark.parametrize("path", SCANNED)
def test_no_task_name_comparisons_outside_the_tasks(path):
    found = task_name_uses(path)
    assert not found, "ask the task's spec instead of comparing its name:\n" + "\n".join(found)


# ---- no torch where it does not belong (what actually gets imported) -----------------------


@pytest.mark.parametrize(
    "code",
    [
        "import lstm_edge.runtime",
        "import lstm_edge.exporters.quantize",
        "import lstm_edge.exporters.onnx_export",
        "import lstm_edge.exporters.compare",
    ],
)
def test_torch_free_modules_do_not_import_torch(code):
    probe = f"{code}\nimport sys\nprint('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True)
    assert out.stdout.strip() == "False"
