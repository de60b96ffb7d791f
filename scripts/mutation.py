#!/usr/bin/env python3
"""Mutation testing for one module at a time: do the tests notice when the code is wrong?

Usage::

    python scripts/mutation.py src/aurous_embed/_retry.py            # its targeted unit tests
    python scripts/mutation.py src/aurous_embed/_parts.py --tests tests/unit/test_validation.py
    python scripts/mutation.py src/aurous_embed/_cache.py --json scores.json --list

Each mutant is one small change to the module's syntax tree (a comparison flipped, ``+`` turned
into ``-``, ``min`` into ``max``, a statement removed, a constant moved, an entry dropped from a
table...), module-level code included. For each mutant the targeted tests run once (``pytest -x``)
in a child forked from a warm interpreter that imports the mutant instead of the module; the
mutant is *killed* when a test fails (or the run times out), and *survives* when every test
passes. The score is killed / (mutants - explained equivalents). Survivors are listed with their
line, so each one is either a missing test, a real bug, or an equivalent mutant that
``scripts/mutation_equivalents.txt`` explains.

Why a small script rather than a package: mutmut 3 mutates only inside functions (this code keeps
its rules in module-level tables and constants too), and cosmic-ray writes each mutant into the
source file on disk and starts a new test process per mutant (about 2 s of pytest and plugin
start-up each, on a 2-CPU machine), and needs a session database and config per run. This script
has no dependency beyond the test extra, never touches ``src/`` (mutants live in memory), forks
the children from a process that has already imported pytest and the heavy test dependencies,
and keeps the list of equivalent mutants, each with its reason, in the repository. It needs
``os.fork`` (Linux, macOS); tests that start a *new* Python process see the unmutated module, so
a mutant only they would catch counts as surviving (the score errs low, never high).
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import copy
import importlib
import importlib.abc
import importlib.machinery
import json
import os
import signal
import sys
import time
import tokenize
import types
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EQUIVALENTS = ROOT / "scripts" / "mutation_equivalents.txt"

#: The unit tests that guard each module (paths that do not exist are skipped). Kept small on
#: purpose: a mutant is run against these, not the whole suite.
TARGETED_TESTS: dict[str, list[str]] = {
    "_retry.py": ["tests/unit/test_retry.py", "tests/unit/test_retry_state.py"],
    "_budget.py": ["tests/unit/test_cache_budget.py", "tests/unit/test_budget_limits.py"],
    "_cache.py": ["tests/unit/test_cache_budget.py", "tests/unit/test_cache_keys.py"],
    "_errors.py": ["tests/unit/test_errors.py", "tests/unit/test_error_classes.py"],
    "_parts.py": [
        "tests/unit/test_validation.py",
        "tests/unit/test_images.py",
        "tests/unit/test_input_caps.py",
        "tests/unit/test_parts_values.py",
    ],
}
# The part types and the input limits were split out of _parts.py: the same tests guard them.
TARGETED_TESTS["_part_checks.py"] = TARGETED_TESTS["_part_types.py"] = TARGETED_TESTS["_parts.py"]

#: Imported once in the parent so each forked child starts warm. Nothing here may import
#: aurous_embed (the child must import the mutant, not a copy made before the fork).
PRELOAD = (
    "pytest",
    "_pytest.python",
    "_pytest.fixtures",
    "hypothesis",
    "hypothesis.strategies",
    "httpx",
    "numpy",
    "PIL.Image",
    "anyio",
    "vcr",
    "langsmith.testing._internal",
    "sqlite3",
    "asyncio",
    "inspect",
    "importlib.metadata",
    "urllib.request",
    "rich.console",
    "rich.progress",
)
#: Plugins the unit tests do not use, left unloaded to start each child faster.
UNUSED_PLUGINS = ("benchmark", "codspeed", "syrupy", "langsmith_plugin")

_COMPARE_SWAPS: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
}
_BINOP_SWAPS: dict[type[ast.operator], type[ast.operator]] = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.Div,
    ast.Div: ast.Mult,
    ast.FloorDiv: ast.Mult,
    ast.Pow: ast.Mult,
    ast.Mod: ast.FloorDiv,
    ast.LShift: ast.RShift,
}


@dataclass
class Mutant:
    index: int
    line: int
    operator: str
    source: str  # the stripped source line, which names the mutant in the equivalents list
    outcome: str = "?"  # killed, survived, timeout, equivalent
    seconds: float = 0.0

    @property
    def key(self) -> str:
        return f"{self.operator} | {self.source}"


@dataclass
class Report:
    module: str
    tests: list[str]
    mutants: list[Mutant] = field(default_factory=list)

    def count(self, outcome: str) -> int:
        return sum(m.outcome == outcome for m in self.mutants)

    @property
    def killed(self) -> int:
        return self.count("killed") + self.count("timeout")

    @property
    def scored(self) -> int:
        return len(self.mutants) - self.count("equivalent")

    @property
    def score(self) -> float:
        return 100.0 * self.killed / self.scored if self.scored else 100.0


class _Mutator(ast.NodeTransformer):
    """Walks the tree in a fixed order; numbers every possible mutation; applies number ``target``
    (or none, with ``target=-1``, to list them)."""

    def __init__(self, target: int, skip_lines: set[int]) -> None:
        self.target = target
        self.skip_lines = skip_lines
        self.found: list[tuple[int, str]] = []
        self.applied = False

    def _candidate(self, node: ast.AST, label: str) -> bool:
        line = getattr(node, "lineno", 0)
        if line in self.skip_lines:
            return False
        self.found.append((line, label))
        if len(self.found) - 1 == self.target:
            self.applied = True
            return True
        return False

    # --- what is never mutated -----------------------------------------------------------------
    def _body(self, body: list[ast.stmt]) -> list[ast.stmt]:
        """Visit a statement list, leaving its docstring alone."""
        start = 0
        if (
            body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            start = 1
        out: list[ast.stmt] = body[:start]
        for stmt in body[start:]:
            new = self.visit(stmt)
            if new is None:
                continue
            out.extend(new if isinstance(new, list) else [new])
        return out or [ast.Pass()]

    def visit_Module(self, node: ast.Module) -> ast.Module:
        node.body = self._body(node.body)
        return node

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.ClassDef:
        node.bases = [self.visit(b) for b in node.bases]
        node.body = self._body(node.body)
        return node

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> ast.AST:
        # Annotations are strings at run time (from __future__ import annotations): not code.
        node.args.defaults = [self.visit(d) for d in node.args.defaults]
        node.args.kw_defaults = [
            self.visit(d) if d is not None else None for d in node.args.kw_defaults
        ]
        node.body = self._body(node.body)
        return node

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        return self._function(node)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> ast.AST:
        return self._function(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> ast.AST:
        if node.value is not None:
            node.value = self.visit(node.value)
        return node

    def visit_If(self, node: ast.If) -> ast.AST:
        if isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            return node
        if self._candidate(node, "if-condition negated"):
            node.test = ast.UnaryOp(op=ast.Not(), operand=node.test)
            return node
        node.test = self.visit(node.test)
        node.body = self._body(node.body)
        node.orelse = self._body(node.orelse) if node.orelse else []
        return node

    def visit_ImportFrom(self, node: ast.ImportFrom) -> ast.AST:
        return node

    def visit_Import(self, node: ast.Import) -> ast.AST:
        return node

    def visit_JoinedStr(self, node: ast.JoinedStr) -> ast.AST:
        return node  # f-strings are messages for people

    def visit_Raise(self, node: ast.Raise) -> ast.AST:
        if self._candidate(node, "raise removed"):
            return ast.Pass()
        return node  # the exception's message is for people; its class is checked by tests

    def visit_Assign(self, node: ast.Assign) -> ast.AST:
        if (
            len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and node.targets[0].id == "__all__"
        ):
            return node
        if any(
            isinstance(t, (ast.Attribute, ast.Subscript)) for t in node.targets
        ) and self._candidate(node, "assignment removed"):
            return ast.Pass()
        node.value = self.visit(node.value)
        return node

    def visit_AugAssign(self, node: ast.AugAssign) -> ast.AST:
        if self._candidate(node, "augmented assignment removed"):
            return ast.Pass()
        swap = _BINOP_SWAPS.get(type(node.op))
        if swap is not None and self._candidate(
            node, f"{type(node.op).__name__}= -> {swap.__name__}="
        ):
            node.op = swap()
            return node
        node.value = self.visit(node.value)
        return node

    def visit_Expr(self, node: ast.Expr) -> ast.AST:
        if isinstance(node.value, ast.Constant) and node.value.value is Ellipsis:
            return node  # a protocol's body: nothing to remove
        if self._candidate(node, "statement removed"):
            return ast.Pass()
        node.value = self.visit(node.value)
        return node

    # --- operators ---------------------------------------------------------------------------
    def visit_Compare(self, node: ast.Compare) -> ast.AST:
        for i, op in enumerate(node.ops):
            swap = _COMPARE_SWAPS.get(type(op))
            if swap is not None and self._candidate(
                node, f"{type(op).__name__} -> {swap.__name__} #{i}"
            ):
                node.ops[i] = swap()
                return node
        self.generic_visit(node)
        return node

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        swap = _BINOP_SWAPS.get(type(node.op))
        if swap is not None and self._candidate(
            node, f"{type(node.op).__name__} -> {swap.__name__}"
        ):
            node.op = swap()
            return node
        self.generic_visit(node)
        return node

    def visit_BoolOp(self, node: ast.BoolOp) -> ast.AST:
        other: ast.boolop = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        if self._candidate(node, f"{type(node.op).__name__} -> {type(other).__name__}"):
            node.op = other
            return node
        self.generic_visit(node)
        return node

    def visit_UnaryOp(self, node: ast.UnaryOp) -> ast.AST:
        if isinstance(node.op, (ast.Not, ast.USub)) and self._candidate(
            node, f"{type(node.op).__name__} removed"
        ):
            return node.operand
        self.generic_visit(node)
        return node

    def visit_IfExp(self, node: ast.IfExp) -> ast.AST:
        if self._candidate(node, "conditional expression negated"):
            node.test = ast.UnaryOp(op=ast.Not(), operand=node.test)
            return node
        self.generic_visit(node)
        return node

    def visit_Call(self, node: ast.Call) -> ast.AST:
        if isinstance(node.func, ast.Name) and node.func.id in ("min", "max"):
            other = "max" if node.func.id == "min" else "min"
            if self._candidate(node, f"{node.func.id} -> {other}"):
                node.func = ast.Name(id=other, ctx=ast.Load())
                return node
        self.generic_visit(node)
        return node

    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        value = node.value
        new: object
        if isinstance(value, bool):
            new, label = not value, f"{value} -> {not value}"
        elif isinstance(value, int):
            new, label = value + 1, f"{value} -> {value + 1}"
        elif isinstance(value, float):
            new = value * 2 if value else 1.0
            label = f"{value!r} -> {new!r}"
        elif isinstance(value, str) and value:
            new, label = "XX" + value + "XX", f"{value[:30]!r} -> 'XX..XX'"
        elif isinstance(value, bytes) and value:
            new, label = b"XX" + value, f"{value[:20]!r} -> b'XX..'"
        else:
            return node
        if self._candidate(node, label):
            return ast.copy_location(ast.Constant(value=new), node)
        return node

    def _drop_elements(self, node: ast.Tuple | ast.List | ast.Set, kind: str) -> ast.AST:
        if isinstance(getattr(node, "ctx", None), ast.Store):
            return node
        if len(node.elts) >= 2:
            for i in range(len(node.elts)):
                if self._candidate(node, f"{kind} element {i} removed"):
                    node.elts = node.elts[:i] + node.elts[i + 1 :]
                    return node
        self.generic_visit(node)
        return node

    def visit_Tuple(self, node: ast.Tuple) -> ast.AST:
        return self._drop_elements(node, "tuple")

    def visit_List(self, node: ast.List) -> ast.AST:
        return self._drop_elements(node, "list")

    def visit_Set(self, node: ast.Set) -> ast.AST:
        return self._drop_elements(node, "set")

    def visit_Dict(self, node: ast.Dict) -> ast.AST:
        for i in range(len(node.keys)):
            if self._candidate(node, f"dict entry {i} removed"):
                node.keys = node.keys[:i] + node.keys[i + 1 :]
                node.values = node.values[:i] + node.values[i + 1 :]
                return node
        self.generic_visit(node)
        return node

    def visit_Subscript(self, node: ast.Subscript) -> ast.AST:
        # A subscript of a type (dict[str, int], Sequence[float]) is typing, not logic.
        if isinstance(node.value, ast.Name) and (
            node.value.id[:1].isupper()
            or node.value.id in ("dict", "list", "tuple", "set", "type", "frozenset")
        ):
            return node
        self.generic_visit(node)
        return node


def _skip_lines(path: Path) -> set[int]:
    """Lines marked ``# pragma: no mutate`` or ``# pragma: no cover``."""
    lines = set()
    with tokenize.open(path) as handle:
        for token in tokenize.generate_tokens(handle.readline):
            if token.type == tokenize.COMMENT and (
                "pragma: no mutate" in token.string or "pragma: no cover" in token.string
            ):
                lines.add(token.start[0])
    return lines


def mutants_of(path: Path) -> tuple[list[Mutant], ast.Module, set[int]]:
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source, filename=str(path))
    skip = _skip_lines(path)
    lister = _Mutator(-1, skip)
    lister.visit(copy.deepcopy(tree))
    lines = source.splitlines()
    mutants = [
        Mutant(i, line, label, lines[line - 1].strip() if line else "")
        for i, (line, label) in enumerate(lister.found)
    ]
    return mutants, tree, skip


def mutated_code(tree: ast.Module, index: int, skip: set[int], path: Path) -> types.CodeType | None:
    mutator = _Mutator(index, skip)
    new_tree = ast.fix_missing_locations(mutator.visit(copy.deepcopy(tree)))
    assert mutator.applied, index
    try:
        return compile(new_tree, str(path), "exec")
    except (SyntaxError, ValueError):
        return None


class _MutantFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves the mutated code object for one module name."""

    def __init__(self, name: str, path: Path, code: types.CodeType) -> None:
        self.name, self.path, self.code = name, path, code

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != self.name:
            return None
        spec = importlib.machinery.ModuleSpec(fullname, self, origin=str(self.path))
        spec.has_location = True
        return spec

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None

    def exec_module(self, module: types.ModuleType) -> None:
        exec(self.code, module.__dict__)


def _run_child(
    name: str, path: Path, code: types.CodeType | None, tests: list[str], quiet: bool
) -> int:
    """In the forked child: import the mutant in place of the module and run the tests."""
    os.setpgid(0, 0)
    if quiet:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
    if code is not None:
        sys.meta_path.insert(0, _MutantFinder(name, path, code))
        # Imported now, before pytest puts its assertion-rewriting finder first on the meta path
        # (it would load the plugin's package, this one, from the file on disk).
        importlib.import_module(name)
        assert sys.modules[name].__spec__.loader is sys.meta_path[0], "the mutant is not in use"
    import pytest

    args = ["-x", "-q", "-p", "no:cacheprovider", "--no-header", "-o", "addopts=", *tests]
    for plugin in UNUSED_PLUGINS:
        args += ["-p", f"no:{plugin}"]
    # Preloaded plugins (anyio, hypothesis...) cannot have their asserts rewritten: no matter.
    args += [
        "--strict-markers",
        "--record-mode=none",
        "-W",
        "ignore::pytest.PytestAssertRewriteWarning",
    ]
    return int(pytest.main(args))


def run_tests(
    name: str,
    path: Path,
    code: types.CodeType | None,
    tests: list[str],
    timeout: float,
    quiet: bool,
) -> tuple[str, float]:
    """Fork, run the tests on the mutant (``code``; ``None`` runs the real module), and judge."""
    start = time.monotonic()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child
        status = 3
        try:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            status = _run_child(name, path, code, tests, quiet)
        finally:
            os._exit(status)
    _CHILDREN[:] = [pid]
    deadline = start + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return "timeout", time.monotonic() - start
        time.sleep(0.02)
    seconds = time.monotonic() - start
    code_ = os.waitstatus_to_exitcode(status)
    # pytest: 0 all passed, 1 a test failed, 2 interrupted, 3 internal error (the mutant broke
    # the import), 4 usage error, 5 no test ran.
    if code_ == 0:
        return "survived", seconds
    if code_ in (4, 5):
        raise SystemExit(f"the test command is wrong (pytest exit {code_}): {tests}")
    return "killed", seconds


_CHILDREN: list[int] = []


def _stop(signum: int, frame: object) -> None:
    """Stopped (Ctrl-C, a CI timeout): take the running child and its processes along."""
    for pid in _CHILDREN:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
    raise SystemExit(128 + signum)


def load_equivalents(module: str) -> dict[str, str]:
    """The listed equivalent mutants of ``module``: ``{key: reason}``.

    The file is blocks separated by blank lines; each block starts with ``#`` lines that say why
    its mutants are equivalent (or not worth a test), then one ``module | operator | source line``
    per mutant, as the survivors are printed. A block without its reason is an error.
    """
    found: dict[str, str] = {}
    if not EQUIVALENTS.exists():
        return found
    reason: list[str] = []
    for number, raw in enumerate(EQUIVALENTS.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line:
            reason = []
        elif line.startswith("#"):
            reason.append(line.lstrip("# "))
        elif not reason:
            raise SystemExit(f"{EQUIVALENTS.name}:{number}: an equivalent mutant needs a reason")
        else:
            mod, _, key = line.partition(" | ")
            if mod.strip() == module:
                found[key.strip()] = " ".join(reason)
    return found


def _preload() -> None:
    for name in PRELOAD:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    if any(m == "aurous_embed" or m.startswith("aurous_embed.") for m in sys.modules):
        raise SystemExit("a preloaded module imported aurous_embed: remove it from PRELOAD")


def mutate_module(
    target: Path, tests: list[str], *, verbose: bool, only: set[int] | None
) -> Report:
    path = target.resolve()
    rel = path.relative_to(ROOT / "src")
    name = ".".join(rel.with_suffix("").parts)
    report = Report(str(path.relative_to(ROOT)), tests)
    mutants, tree, skip = mutants_of(path)
    equivalents = load_equivalents(path.name)
    print(f"{report.module}: {len(mutants)} mutants; tests: {' '.join(tests)}", flush=True)

    outcome, baseline = run_tests(name, path, None, tests, 600.0, quiet=not verbose)
    if outcome != "survived":
        raise SystemExit(f"the tests fail on the unmutated module ({outcome}): fix them first")
    timeout = 3 * baseline + 10.0
    print(f"  baseline: tests pass in {baseline:.1f} s; timeout per mutant {timeout:.0f} s")

    seen: dict[str, int] = {}
    for mutant in mutants:
        # The same change twice on one line: tell them apart by their order.
        n = seen[mutant.key] = seen.get(mutant.key, 0) + 1
        if n > 1:
            mutant.operator += f" ({n})"
        if only is not None and mutant.index not in only:
            continue
        if mutant.key in equivalents:
            mutant.outcome = "equivalent"
            continue
        code = mutated_code(tree, mutant.index, skip, path)
        if code is None:
            mutant.outcome = "killed"  # does not compile: not a program anyone could ship
            continue
        mutant.outcome, mutant.seconds = run_tests(name, path, code, tests, timeout, not verbose)
        mark = {"killed": ".", "timeout": "T", "survived": "S"}[mutant.outcome]
        print(mark, end="", flush=True)
    print()
    if only is not None:
        report.mutants = [m for m in mutants if m.index in only]
    else:
        report.mutants = mutants
    stale = set(equivalents) - {m.key for m in mutants}
    for key in sorted(stale):
        print(f"  note: listed as equivalent but no longer a mutant: {key}")
    return report


def print_report(report: Report, *, list_all: bool) -> None:
    print(
        f"{report.module}: {report.killed} killed ({report.count('timeout')} by timeout), "
        f"{report.count('survived')} survived, {report.count('equivalent')} equivalent (listed); "
        f"score {report.score:.1f}%"
    )
    for mutant in report.mutants:
        if mutant.outcome == "survived" or (list_all and mutant.outcome == "equivalent"):
            where = f"{Path(report.module).name}:{mutant.line}"
            print(f"  {mutant.outcome.upper()} {where} #{mutant.index}: {mutant.key}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("modules", nargs="+", type=Path, help="e.g. src/aurous_embed/_retry.py")
    parser.add_argument(
        "--tests", nargs="+", help="test files (default: the module's targeted tests)"
    )
    parser.add_argument("--json", type=Path, help="write the scores and survivors to this file")
    parser.add_argument("--only", type=int, nargs="+", help="run only these mutant numbers")
    parser.add_argument("--list", action="store_true", help="also list the equivalent mutants")
    parser.add_argument("--min-score", type=float, default=0.0, help="exit 1 below this score")
    parser.add_argument("--verbose", action="store_true", help="show pytest's output")
    args = parser.parse_args(argv)

    if not hasattr(os, "fork"):
        raise SystemExit("this script needs os.fork (Linux or macOS)")
    os.chdir(ROOT)
    # This tree's package and tests, whatever the environment has installed.
    sys.path[:0] = [str(ROOT / "src"), str(ROOT)]
    _preload()
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    reports = []
    for module in args.modules:
        tests = args.tests or [
            t for t in TARGETED_TESTS.get(module.name, []) if (ROOT / t).exists()
        ]
        if not tests:
            raise SystemExit(f"no targeted tests known for {module.name}: pass --tests")
        report = mutate_module(
            module, tests, verbose=args.verbose, only=set(args.only) if args.only else None
        )
        print_report(report, list_all=args.list)
        reports.append(report)

    if reports:
        print("\n| module | mutants | killed | survived | equivalent | score |")
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        for r in reports:
            print(
                f"| `{Path(r.module).name}` | {len(r.mutants)} | {r.killed} | "
                f"{r.count('survived')} | {r.count('equivalent')} | {r.score:.1f}% |"
            )
    if args.json:
        args.json.write_text(
            json.dumps(
                [
                    {
                        "module": r.module,
                        "tests": r.tests,
                        "mutants": len(r.mutants),
                        "killed": r.killed,
                        "survived": r.count("survived"),
                        "equivalent": r.count("equivalent"),
                        "score": round(r.score, 1),
                        "survivors": [
                            {"line": m.line, "mutant": m.key}
                            for m in r.mutants
                            if m.outcome == "survived"
                        ],
                    }
                    for r in reports
                ],
                indent=2,
            )
            + "\n",
            encoding="utf-8",
        )
    return 1 if any(r.score < args.min_score for r in reports) else 0


if __name__ == "__main__":
    sys.exit(main())
