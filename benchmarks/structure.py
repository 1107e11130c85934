"""The package structure in figures (issue 13): files and lines per package, import edges
between packages, edges that point up the layers of ``.importlinter``, private imports across
packages, and import cycles between packages.

    python -m benchmarks.structure                 # this tree
    python -m benchmarks.structure --root DIR      # another checkout (e.g. a git worktree)

A package is a top-level package (ingest, notifier, ...) or a sub-package of gridwatch. Modules
at gridwatch's root before issue 13 (``gridwatch/_clock.py``...) are counted in the package
their code moved to (``LEGACY``) for the edges, so that both trees are judged by the same
layers; files and lines are counted by directory, as the tree stands. Every
import counts: module level, inside functions and under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import argparse
import ast
import configparser
import sys
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

TOP_PACKAGES = ("gridwatch", "ingest", "detectors", "notifier", "simulators")

# Where each module of the tree before issue 13 lives now (by package).
LEGACY = {
    "gridwatch._clock": "gridwatch.core",
    "gridwatch._errors": "gridwatch.core",
    "gridwatch._settings": "gridwatch.core",
    "gridwatch._metrics": "gridwatch.core",
    "gridwatch._logging": "gridwatch.core",
    "gridwatch._pacing": "gridwatch.core",
    "gridwatch._service": "gridwatch.app",
    "gridwatch.cli": "gridwatch.app",
    "gridwatch._cli_args": "gridwatch.app",
    "gridwatch._cli_db": "gridwatch.app",
    "gridwatch._demo": "gridwatch.app",
    "gridwatch._embedded": "gridwatch.app",
    "gridwatch.__main__": "gridwatch.app",
    "gridwatch._notify_bridge": "gridwatch.notices",
    "gridwatch._planned_notices": "gridwatch.notices",
    "gridwatch._planned_windows": "gridwatch.outages",
    "gridwatch._reliability": "gridwatch.outages",
}


def package_of(module: str, root: Path) -> str:
    parts = module.split(".")
    if parts[0] != "gridwatch" or len(parts) == 1:
        return parts[0]
    if (root / "gridwatch" / parts[1]).is_dir():
        return f"gridwatch.{parts[1]}"
    return LEGACY.get(f"gridwatch.{parts[1]}", "gridwatch")


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@dataclass(frozen=True)
class Import:
    source: str  # importing module
    target: str  # imported module (or module.name for ``from m import name``)
    private: bool  # names a private module or name of the target's package
    line: int


def is_module(dotted: str, root: Path) -> bool:
    path = root.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imports_of(path: Path, module: str, root: Path) -> Iterator[Import]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(module, alias.name, _private(alias.name), node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            for alias in node.names:
                # ``from gridwatch import _metrics``: the import names a module
                sub = f"{target}.{alias.name}"
                if is_module(sub, root):
                    yield Import(module, sub, _private(sub), node.lineno)
                else:
                    yield Import(
                        module, target, _private(target) or alias.name.startswith("_"), node.lineno
                    )


def _private(target: str) -> bool:
    return any(p.startswith("_") and not p.startswith("__") for p in target.split(".")[1:])


@dataclass
class Structure:
    files: Counter[str] = field(default_factory=Counter)
    lines: Counter[str] = field(default_factory=Counter)
    edges: Counter[tuple[str, str]] = field(default_factory=Counter)
    private: Counter[tuple[str, str]] = field(default_factory=Counter)


def measure(root: Path) -> Structure:
    s = Structure()
    for top in TOP_PACKAGES:
        for path in sorted((root / top).rglob("*.py")):
            module = module_name(path, root)
            unit = package_of(module, root)
            # files by the directory they are in (the tree as it is), edges by layer
            where = "/".join(path.relative_to(root).parts[:-1])
            s.files[where] += 1
            s.lines[where] += len(path.read_text(encoding="utf-8").splitlines())
            # one import statement to one package counts once, however many names it takes
            seen: dict[tuple[int, str], bool] = {}
            for imp in imports_of(path, module, root):
                if imp.target.split(".")[0] not in TOP_PACKAGES:
                    continue
                target_unit = package_of(imp.target, root)
                if target_unit != unit:
                    key = (imp.line, target_unit)
                    seen[key] = seen.get(key, False) or imp.private
            for (_, target_unit), private in seen.items():
                s.edges[(unit, target_unit)] += 1
                if private:
                    s.private[(unit, target_unit)] += 1
    return s


def read_layers(config: Path) -> list[list[str]]:
    """The layers contract of ``.importlinter``, top first; each layer its packages."""
    parser = configparser.ConfigParser()
    parser.read(config)
    text = parser["importlinter:contract:layers"]["layers"]
    return [
        [p.strip() for p in line.replace(":", "|").split("|")]
        for line in text.strip().splitlines()
        if line.strip()
    ]


def upward(s: Structure, layers: list[list[str]]) -> Counter[tuple[str, str]]:
    """Edges from a lower layer to a higher one (layers listed top first)."""
    level = {pkg: i for i, layer in enumerate(layers) for pkg in layer}
    out: Counter[tuple[str, str]] = Counter()
    for (a, b), n in s.edges.items():
        la, lb = level.get(a), level.get(b)
        if la is not None and lb is not None and lb < la:
            out[(a, b)] += n
    return out


def cycles(edges: Iterable[tuple[str, str]]) -> list[list[str]]:
    """Groups of packages that import each other, directly or through others (the strongly
    connected components of more than one package)."""
    graph: dict[str, set[str]] = {}
    for a, b in edges:
        if a == b:
            continue
        graph.setdefault(a, set()).add(b)
        graph.setdefault(b, set())

    def reach(start: str) -> set[str]:
        seen, todo = {start}, [start]
        while todo:
            for nxt in graph[todo.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    reached = {unit: reach(unit) for unit in graph}
    groups = {tuple(sorted(u for u in reached[unit] if unit in reached[u])) for unit in graph}
    return sorted(list(g) for g in groups if len(g) > 1)


def report(s: Structure, layers: list[list[str]]) -> str:
    up = upward(s, layers)
    out = ["| directory | files | lines |", "|---|---|---|"]
    for unit in sorted(s.files):
        out.append(f"| {unit} | {s.files[unit]} | {s.lines[unit]} |")
    out.append("")
    out.append(
        f"import edges between packages: {len(s.edges)} pairs, "
        f"{sum(s.edges.values())} import statements"
    )
    out.append(f"upward edges: {len(up)} pairs, {sum(up.values())} import statements")
    for (a, b), n in sorted(up.items()):
        out.append(f"  {a} -> {b}: {n}")
    out.append(
        f"private imports across packages: {sum(s.private.values())} import statements "
        f"({len(s.private)} pairs)"
    )
    for (a, b), n in sorted(s.private.items(), key=lambda kv: -kv[1]):
        out.append(f"  {a} -> {b}: {n}")
    top = [(a.split(".")[0], b.split(".")[0]) for a, b in s.edges]
    for what, groups in (("packages", cycles(s.edges)), ("top-level packages", cycles(top))):
        out.append(f"import cycles between {what}: {len(groups)}")
        for group in groups:
            out.append("  " + " <-> ".join(group))
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    here = Path(__file__).resolve().parent.parent
    ap = argparse.ArgumentParser(prog="python -m benchmarks.structure", description=__doc__)
    ap.add_argument("--root", type=Path, default=here, help="the checkout to measure")
    ap.add_argument(
        "--layers", type=Path, default=here / ".importlinter", help="the layers contract"
    )
    args = ap.parse_args(argv)
    if not (args.root / "gridwatch").is_dir():
        ap.error(f"{args.root} holds no gridwatch/ package")
    print(report(measure(args.root), read_layers(args.layers)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
