"""Prove that the current tree writes every artifact byte for byte as a base ref does.

For refactors that promise not to change any output. The script trains a tiny char-lm and a
tiny forecast checkpoint once (with the current tree), then runs the same commands with the
base ref's code and with the current tree's code, each into its own folder:

    export (float), quantize (int8, int8-dynamic, fp16), and codegen for the float and the
    int8 artifact (host; also cortex-m4 when arm-none-eabi-gcc is installed)

and compares every file they wrote, byte for byte (a file on one side only is a difference).
It also looks inside every file for the absolute paths and commit ids of this run: an
artifact that embeds one is reported as a failure even when both sides agree, since the
agreement would then only hold on this machine.

    python3 scripts/artifact_identity.py [--base REF] [--keep DIR]

REF defaults to origin/main if it exists, else HEAD. The base ref is checked out with
`git worktree add --detach` into a temp folder (removed at the end unless --keep). Each side's
code runs from its own tree: a folder ns/lstm_edge/ links that tree's package folders (read
from its pyproject.toml), and a small bootstrap drops setuptools' editable finder, which
would otherwise serve /work/main's code to both sides. Every process records the files of
the lstm_edge modules it imported; the script fails if one is not under that side's tree.

Exit status: 0 every artifact identical; 1 a difference, a failed command, an embedded path
or ref, or code imported from the wrong tree; 2 bad usage (e.g. an unknown ref).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = None

REPO = Path(__file__).resolve().parent.parent
console = Console(highlight=False, soft_wrap=True)
if not console.is_terminal:  # piped or logged: wide enough for a path per line
    console.width = max(console.width, 120)
_print_lock = threading.Lock()

# What pyproject.toml says today; used only if tomllib is missing (Python 3.10).
DEFAULT_PACKAGE_DIR = {
    "lstm_edge.toolchain": "toolchain",
    "lstm_edge.exporters": "exporters",
    "lstm_edge.runtime": "runtime",
}
DEFAULT_ENTRY = "lstm_edge.toolchain.cli:app"

# Tiny models: a few seconds of training, same spirit as tests/toolchain/conftest.py.
TINY = ["--hidden", "16", "--layers", "1", "--seq-len", "16", "--batch-size", "4",
        "--steps", "12", "--eval-every", "4", "--threads", "1", "--seed", "0",
        "--no-progress"]  # fmt: skip
SCHEMES = ("int8", "int8-dynamic", "fp16")
WORDS = ("the", "state", "is", "owned", "by", "the", "caller", "and", "carried", "from", "step",
         "to", "step", "while", "the", "model", "stays", "immutable", "so", "many", "streams",
         "can", "share", "one", "model", "and", "a", "beam", "can", "branch")  # fmt: skip

# Runs inside each child python (`python -I -c BOOTSTRAP ...`): makes NS the only source of
# lstm_edge, then imports packages ("import") or runs the console script ("run"); at exit it
# appends the files of every lstm_edge module it loaded to MANIFEST (one JSON line).
BOOTSTRAP = r"""
import atexit, importlib, json, sys
ns, manifest, mode, *rest = sys.argv[1:]
def _editable(obj):  # setuptools' editable finder, its path hook and placeholder entries
    return getattr(obj, "__module__", "").startswith("__editable__")
sys.meta_path[:] = [f for f in sys.meta_path if not _editable(f)]
sys.path_hooks[:] = [h for h in sys.path_hooks if not _editable(h)]
sys.path[:] = [ns] + [p for p in sys.path if p and "__editable__" not in p]
sys.path_importer_cache.clear()
for name in [m for m in sys.modules if m.split(".")[0] == "lstm_edge"]:
    del sys.modules[name]
def _record():
    files = {n: getattr(m, "__file__", None) for n, m in list(sys.modules.items())
             if n.split(".")[0] == "lstm_edge"}
    with open(manifest, "a", encoding="utf-8") as f:
        f.write(json.dumps(files) + "\n")
atexit.register(_record)
if mode == "import":
    for name in rest:
        importlib.import_module(name)
else:
    module, _, attr = rest[0].partition(":")
    sys.argv = ["lstm-edge", *rest[1:]]
    sys.exit(getattr(importlib.import_module(module), attr)())
"""


class UsageError(Exception):
    """Bad arguments or an unknown ref: exit status 2."""


@dataclass
class Side:
    name: str  # "base" or "current"
    root: Path  # the tree whose code runs
    label: str  # for the report
    work: Path  # this side's folder in the temp folder
    package_dir: dict[str, str] = field(default_factory=dict)
    entry: str = DEFAULT_ENTRY
    commands: int = 0  # successful commands, each of which must have written a manifest line
    failures: list[str] = field(default_factory=list)

    @property
    def ns(self) -> Path:
        return self.work / "ns"

    @property
    def out(self) -> Path:
        return self.work / "out"

    @property
    def manifest(self) -> Path:
        return self.work / "imports.jsonl"


@dataclass(frozen=True)
class Step:
    label: str
    args: tuple[str, ...]  # lstm-edge arguments; "{out}" is replaced by the side's out folder


def say(msg: str) -> None:
    with _print_lock:
        console.print(msg)


def git(*args: str, cwd: Path = REPO, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=check)


def rev(ref: str) -> str | None:
    result = git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False)
    return result.stdout.strip() if result.returncode == 0 else None


# ---- running a side's code ----------------------------------------------------------------


def read_layout(side: Side) -> None:
    """The side's package folders and console script, from its own pyproject.toml."""
    if tomllib is None:
        say("[yellow]note:[/] no tomllib (Python 3.10): assuming today's package layout")
        side.package_dir = dict(DEFAULT_PACKAGE_DIR)
        return
    with open(side.root / "pyproject.toml", "rb") as f:
        project = tomllib.load(f)
    side.package_dir = project["tool"]["setuptools"]["package-dir"]
    side.entry = project["project"]["scripts"]["lstm-edge"]


def build_namespace(side: Side) -> None:
    """ns/lstm_edge/<name> -> the side's folder, for each package-dir entry."""
    for package, folder in side.package_dir.items():
        parts = package.split(".")
        if len(parts) < 2 or parts[0] != "lstm_edge":
            raise RuntimeError(f"{side.root}/pyproject.toml maps {package!r}, not lstm_edge.*")
        link = side.ns.joinpath(*parts)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(side.root / folder, target_is_directory=True)


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    # One thread per process: deterministic sums, and the two sides share 2 cores fairly.
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    return env


def run_python(side: Side, mode: str, args: list[str], log: Path) -> int:
    cmd = [sys.executable, "-I", "-c", BOOTSTRAP, str(side.ns), str(side.manifest), mode, *args]
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w", encoding="utf-8") as f:
        rc = subprocess.run(cmd, cwd=side.work, env=child_env(), stdout=f, stderr=f).returncode
    if rc == 0:
        side.commands += 1
    return rc


def lstm_edge(side: Side, args: list[str], log: Path) -> int:
    return run_python(side, "run", [side.entry, *args], log)


def tail(log: Path, lines: int = 6) -> str:
    text = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    return "\n".join("    " + line for line in text[-lines:])


def check_imports(side: Side) -> list[str]:
    """Every lstm_edge module file any of the side's processes loaded, outside its tree."""
    root = side.root.resolve()
    lines = side.manifest.read_text(encoding="utf-8").splitlines() if side.manifest.exists() else []
    problems = []
    if len(lines) < side.commands:
        problems.append(f"{side.name}: {side.commands} commands but {len(lines)} import records")
    for line in lines:
        for module, file in json.loads(line).items():
            if file is not None and not Path(file).resolve().is_relative_to(root):
                problems.append(f"{side.name}: {module} came from {Path(file).resolve()}")
    return sorted(set(problems))


def probe(side: Side) -> None:
    """Import the side's packages once and show where they came from."""
    packages = sorted(side.package_dir)
    log = side.work / "logs" / "probe.log"
    if run_python(side, "import", packages, log) != 0:
        raise RuntimeError(f"{side.name}: importing {packages} failed:\n{tail(log)}")
    files = json.loads(side.manifest.read_text(encoding="utf-8").splitlines()[-1])
    for package in packages:
        file = Path(files[package]).resolve()
        ok = file.is_relative_to(side.root.resolve())
        mark = "[green]ok[/]" if ok else "[red]NOT UNDER ITS TREE[/]"
        say(f"  {side.name:8} {package} <- {file}  {mark}")
        if not ok:
            raise RuntimeError(f"{side.name} imports {package} from {file}, not {side.root}")


# ---- the commands -------------------------------------------------------------------------


def tiny_corpus(path: Path, chars: int = 8000) -> Path:
    rng = random.Random(0)
    parts: list[str] = []
    while sum(map(len, parts)) < chars:
        words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 12)))
        parts.append(words.capitalize() + ".\n")
    path.write_text("".join(parts), encoding="utf-8")
    return path


def train_checkpoints(current: Side, ckpts: Path) -> dict[str, Path]:
    """The two tiny checkpoints, trained once with the current tree's CLI."""
    ckpts.mkdir()
    corpus = tiny_corpus(ckpts / "corpus.txt")
    jobs = {
        "char-lm": ["train", "--out", str(ckpts / "char-lm"), "--corpus", str(corpus),
                    "--embed", "8", *TINY],
        "forecast": ["train", "--task", "forecast", "--out", str(ckpts / "forecast"), *TINY],
    }  # fmt: skip

    def train(task: str) -> None:
        log = current.work / "logs" / f"train-{task}.log"
        if lstm_edge(current, jobs[task], log) != 0:
            raise RuntimeError(f"training the {task} checkpoint failed:\n{tail(log)}")

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(train, jobs))
    return {task: ckpts / task for task in jobs}


def plan(checkpoints: dict[str, Path], targets: list[str]) -> list[Step]:
    steps = []
    for task, ckpt in checkpoints.items():
        float_onnx = f"{{out}}/{task}.onnx"
        steps.append(Step(f"export {task}", ("export", str(ckpt), "-o", float_onnx)))
        for scheme in SCHEMES:
            quantized = f"{{out}}/{task}.{scheme}.onnx"
            steps.append(
                Step(
                    f"quantize {task} {scheme}",
                    ("quantize", float_onnx, "--scheme", scheme, "-o", quantized),
                )
            )
        for kind, model in (("float", float_onnx), ("int8", f"{{out}}/{task}.int8.onnx")):
            for target in targets:
                bundle = f"{{out}}/c-{task}-{kind}-{target}"
                steps.append(
                    Step(
                        f"codegen {task} {kind} {target}",
                        ("codegen", model, "--target", target, "-o", bundle),
                    )
                )
    return steps


def run_side(side: Side, steps: list[Step]) -> None:
    side.out.mkdir(parents=True)
    for n, step in enumerate(steps):
        args = [a.replace("{out}", str(side.out)) for a in step.args]
        log = side.work / "logs" / f"{n:02d}-{step.label.replace(' ', '-')}.log"
        start = time.monotonic()
        rc = lstm_edge(side, args, log)
        took = time.monotonic() - start
        if rc == 0:
            say(f"  {side.name:8} {step.label:36} ok  {took:5.1f} s")
        else:
            side.failures.append(f"{side.name}: {step.label}: exit {rc}\n{tail(log)}")
            say(f"  {side.name:8} {step.label:36} [red]FAILED (exit {rc})[/]  {took:5.1f} s")


# ---- comparing ----------------------------------------------------------------------------


def files_under(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        return {}
    return {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*")) if p.is_file()}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def compare(base: Side, current: Side) -> list[tuple[str, Path | None, Path | None, bool]]:
    a, b = files_under(base.out), files_under(current.out)
    rows = []
    for rel in sorted(set(a) | set(b)):
        pa, pb = a.get(rel), b.get(rel)
        same = pa is not None and pb is not None and pa.read_bytes() == pb.read_bytes()
        rows.append((rel, pa, pb, same))
    return rows


def needles(work: Path, base_root: Path, base_sha: str, head_sha: str | None) -> dict[str, bytes]:
    """Strings no artifact should contain: this run's absolute paths, commit ids, date."""
    found: dict[str, bytes] = {}
    for what, path in (("temp folder", work), ("repo path", REPO), ("worktree path", base_root)):
        for variant in {str(path), str(path.resolve())}:
            found[f"{what} {variant}"] = variant.encode()
    for what, sha in (("base commit", base_sha), ("HEAD commit", head_sha)):
        if sha:
            found[f"{what} {sha[:12]}"] = sha[:12].encode()
    for day in {dt.date.today(), dt.datetime.now(dt.timezone.utc).date()}:
        found[f"today's date {day.isoformat()}"] = day.isoformat().encode()
    return found


def embedded(sides: list[Side], strings: dict[str, bytes]) -> list[tuple[str, str]]:
    hits = []
    for side in sides:
        for rel, path in files_under(side.out).items():
            data = path.read_bytes()
            hits += [(f"{side.name}/{rel}", what) for what, s in strings.items() if s in data]
    return hits


def size(path: Path | None) -> str:
    return "-" if path is None else f"{path.stat().st_size:,}"


def report(rows, hits, problems, failures) -> int:
    table = Table(title="artifacts: base vs current")
    table.add_column("file", overflow="fold")
    table.add_column("bytes (base)", justify="right")
    table.add_column("bytes (current)", justify="right")
    table.add_column("identical")
    for rel, pa, pb, same in rows:
        table.add_row(rel, size(pa), size(pb), "[green]yes[/]" if same else "[red]NO[/]")
    console.print(table)

    differ = [r for r in rows if not r[3]]
    if differ:
        diff = Table(title="files that differ", show_lines=True)
        diff.add_column("file", overflow="fold")
        diff.add_column("side")
        diff.add_column("bytes", justify="right")
        diff.add_column("sha256", no_wrap=True, min_width=64)
        for rel, pa, pb, _ in differ:
            digests = [sha256(p) if p else "(missing)" for p in (pa, pb)]
            diff.add_row(rel, "base\ncurrent", f"{size(pa)}\n{size(pb)}", "\n".join(digests))
        console.print(diff)
    if hits:
        emb = Table(title="files embedding a path, commit id or date of this run")
        emb.add_column("file", overflow="fold")
        emb.add_column("contains")
        for where, what in hits:
            emb.add_row(where, what)
        console.print(emb)
    for text in failures + problems:
        console.print(f"[red]error:[/] {text}")

    identical = sum(r[3] for r in rows)
    ok = rows and not differ and not hits and not problems and not failures
    if ok:
        console.print(f"[green]all {identical} files identical[/]")
        return 0
    console.print(
        f"[red]not proven:[/] {identical} of {len(rows)} files identical, {len(differ)} differ"
        f"; {len(hits)} embed a path/ref/date; {len(failures)} commands failed"
        f"; {len(problems)} import problems"
    )
    return 1


# ---- main ---------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Prove that the current tree writes every artifact byte for byte as a "
        "base git ref does (export, quantize, codegen of tiny models).",
    )
    parser.add_argument(
        "--base", metavar="REF", help="git ref to compare with (default: origin/main, else HEAD)"
    )
    parser.add_argument(
        "--keep",
        metavar="DIR",
        type=Path,
        help="work in DIR (new or empty) and keep it and the base worktree for inspection",
    )
    return parser.parse_args(argv)


def make_work_folder(keep: Path | None) -> Path:
    if keep is None:
        return Path(tempfile.mkdtemp(prefix="artifact-identity-")).resolve()
    if keep.exists() and (not keep.is_dir() or any(keep.iterdir())):
        raise UsageError(f"--keep {keep}: expected a new or empty folder")
    keep.mkdir(parents=True, exist_ok=True)
    return keep.resolve()


def run(args: argparse.Namespace) -> int:
    ref = args.base or ("origin/main" if rev("origin/main") else "HEAD")
    base_sha = rev(ref)
    if base_sha is None:
        raise UsageError(f"--base {ref}: not a commit in {REPO}")
    head_sha = rev("HEAD")
    work = make_work_folder(args.keep)
    base_root = work / "base-src"
    started = time.monotonic()
    try:
        git("worktree", "add", "--detach", str(base_root), base_sha)
        base = Side("base", base_root, f"{ref} ({base_sha[:12]})", work / "base")
        current = Side("current", REPO, f"work tree {REPO}", work / "current")
        console.print(f"base:    {base.label}, checked out in {base_root}")
        console.print(f"current: {current.label}")
        console.print(f"work folder: {work}")
        console.print("imports (each side from its own tree):")
        for side in (base, current):
            side.work.mkdir(parents=True)
            read_layout(side)
            build_namespace(side)
            probe(side)

        console.print("training the tiny checkpoints (current tree)...")
        checkpoints = train_checkpoints(current, work / "checkpoints")
        targets = ["host"]
        if shutil.which("arm-none-eabi-gcc"):
            targets.append("cortex-m4")
        else:
            console.print(
                "[yellow]note:[/] no arm-none-eabi-gcc: skipping codegen --target cortex-m4"
            )
        steps = plan(checkpoints, targets)
        console.print(f"running {len(steps)} commands on each side...")
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(run_side, (base, current), (steps, steps)))

        rows = compare(base, current)
        hits = embedded([base, current], needles(work, base_root, base_sha, head_sha))
        problems = check_imports(base) + check_imports(current)
        for side in (base, current):
            if not any(p.startswith(f"{side.name}:") for p in problems):
                console.print(
                    f"{side.name}: all lstm_edge modules loaded by its {side.commands} commands "
                    f"came from {side.root}"
                )
        status = report(rows, hits, problems, base.failures + current.failures)
    finally:
        if args.keep is None:
            if base_root.exists():
                git("worktree", "remove", "--force", str(base_root), check=False)
            git("worktree", "prune", check=False)
            shutil.rmtree(work, ignore_errors=True)
        else:
            console.print(
                f"kept {work}; remove the worktree with: git worktree remove --force {base_root}"
            )
    console.print(f"took {time.monotonic() - started:.0f} s")
    return status


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except UsageError as e:
        console.print(f"[red]error:[/] {e}")
        return 2
    except (RuntimeError, subprocess.CalledProcessError) as e:
        detail = e.stderr.strip() if isinstance(e, subprocess.CalledProcessError) else ""
        console.print(f"[red]error:[/] {e}{': ' + detail if detail else ''}")
        return 1
    except KeyboardInterrupt:
        console.print("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
