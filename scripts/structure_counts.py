"""Count what issue 11 measured, for any git ref: task-name branches, cross-layer imports,
import cycles and functions over 80 lines in toolchain/, exporters/ and runtime/.

    python3 scripts/structure_counts.py [REF]     # default: the work tree

A reading aid for before/after comparisons; tests/test_structure.py is what enforces.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

LAYERS = {"toolchain": 2, "exporters": 1, "runtime": 0}
TASK_NAMES = {"char-lm", "forecast"}
TASK_DIRS = ("runtime/tasks/", "toolchain/tasks/")


def sources(ref: str | None) -> dict[str, str]:
    if ref is None:
        return {str(p): p.read_text() for top in LAYERS for p in Path(top).rglob("*.py")}
    names = subprocess.run(
        ["git", "ls-tree", "-r", "--name-only", ref, *LAYERS],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return {
        n: subprocess.run(
            ["git", "show", f"{ref}:{n}"], capture_output=True, text=True, check=True
        ).stdout
        for n in names
        if n.endswith(".py")
    }


def module_name(path: str) -> str:
    parts = path[:-3].split("/")
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return "lstm_edge." + ".".join(parts)


SPEC_NAMES = {"CHAR_LM", "FORECAST"}  # the registry's spec objects by name


def _name(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant):
        return node.value in TASK_NAMES
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return any(_name(e) for e in node.elts)
    return False


def task_branch(node: ast.AST) -> bool:
    """A comparison or table that singles out a task (the definition tests/test_structure.py
    enforces): a task name or spec object compared, a `.task` compared with a string, a
    dict keyed by task names or spec objects, or a `case "forecast":`."""
    if isinstance(node, ast.Compare):
        items = [node.left, *node.comparators]
        spec = any(getattr(i, "id", getattr(i, "attr", None)) in SPEC_NAMES for i in items)
        strings = any(isinstance(i, ast.Constant) and isinstance(i.value, str) for i in items)
        attr = any(isinstance(i, ast.Attribute) and i.attr == "task" for i in items)
        return any(_name(i) for i in items) or spec or (strings and attr)
    if isinstance(node, ast.Dict):
        return any(
            k is not None and (_name(k) or getattr(k, "id", None) in SPEC_NAMES) for k in node.keys
        )
    return isinstance(node, ast.MatchValue) and _name(node.value)


def main() -> None:
    ref = sys.argv[1] if len(sys.argv) > 1 else None
    files = sources(ref)
    branches: dict[str, int] = {}
    cross: list[str] = []
    long_funcs: list[str] = []
    graph: dict[str, set[str]] = {}
    for path, text in files.items():
        tree = ast.parse(text)
        typing_only = {
            id(n)
            for node in ast.walk(tree)
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            for stmt in node.body
            for n in ast.walk(stmt)
        }
        top = path.split("/")[0]
        me = module_name(path)
        graph.setdefault(me, set())
        for node in ast.walk(tree):
            if task_branch(node) and not path.startswith(TASK_DIRS):
                branches[path] = branches.get(path, 0) + 1
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > 80:
                    long_funcs.append(f"{path}:{node.name} ({length})")
            mods = []
            if id(node) in typing_only:
                pass
            elif isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                mods = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for k, mod in enumerate(mods):
                m = re.match(r"lstm_edge\.(toolchain|exporters|runtime)\b", mod)
                if not m:
                    continue
                if k == 0 and LAYERS[m.group(1)] > LAYERS[top]:  # once per statement
                    cross.append(f"{path}:{node.lineno} -> {mod}")
                graph[me].add(mod)
    known = set(graph)
    edges = {a: {b for b in bs if b in known and b != a} for a, bs in graph.items()}
    cycles = set()
    for a, bs in edges.items():
        for b in bs:
            if a in edges.get(b, ()):
                cycles.add(tuple(sorted((a, b))))
    print(f"ref: {ref or 'work tree'}")
    print(
        f"task-name branches outside the task modules: {sum(branches.values())} "
        f"in {len(branches)} files"
    )
    for path, n in sorted(branches.items(), key=lambda kv: -kv[1]):
        print(f"  {n:3d} {path}")
    print(f"imports against toolchain -> exporters -> runtime: {len(set(cross))}")
    for c in sorted(set(cross)):
        print(f"  {c}")
    print(f"two-module import cycles: {len(cycles)}")
    for a, b in sorted(cycles):
        print(f"  {a} <-> {b}")
    print(f"functions over 80 lines: {len(long_funcs)}")
    for f in sorted(long_funcs):
        print(f"  {f}")


if __name__ == "__main__":
    main()
