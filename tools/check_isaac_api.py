#!/usr/bin/env python
"""Static check of the Isaac backend's Isaac Sim API use against a release's Python sources.

Usage::

    pip download --no-deps --only-binary=:all: --python-version 3.12 \\
        --platform manylinux_2_35_x86_64 -d /tmp/isaac_wheels \\
        isaacsim-kernel==6.2.0.0 isaacsim-core==6.2.0.0 isaacsim-storage==6.2.0.0 \\
        isaacsim-replicator==6.2.0.0
    python tools/check_isaac_api.py --wheels /tmp/isaac_wheels

The wheels' Python files are extracted (once) next to them; no Isaac Sim code is imported or
run. The backend modules (``sim2real/sim/isaac/{app,backend,executor}.py``) are parsed with
``ast`` and every use of an ``isaacsim.*`` API is checked:

* the module exists (``isaacsim/exts*/<ext>/<module path>.py`` or ``__init__.py``);
* the imported or called function / class exists (following ``from .x import Y``, star
  imports and ``__all__``);
* methods called or attributes read on an instance exist in its class or a base class, when
  the instance's type is known: built by a class call, annotated (variables, parameters,
  dataclass fields, return types of the project's own functions), or read from a typed
  container;
* every keyword argument is a parameter of the function or ``__init__`` (or ``**kwargs`` is
  accepted), there are not more positional arguments than parameters, and no required
  parameter is missing;
* the ``SimulationApp`` launch-config keys of :func:`sim2real.sim.isaac.app.launch_config` are
  keys of ``SimulationApp.DEFAULT_LAUNCHER_CONFIG``, and the OmniPBR input names passed to
  ``set_input_values`` are inputs the ``OmniPbrMaterial`` wrapper declares.

What cannot be checked is listed as UNCHECKED: ``omni.replicator.core`` (shipped in
``isaacsim-extscache-kit``, which is not on PyPI for 6.2; for its calls the table shows how
often the same call appears in the ``isaacsim-replicator`` wheel's own sources, which is
evidence, not a check), ``pxr`` (USD) and calls on objects whose type the sources do not
declare. The exit status is 1 when anything is MISSING.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_TARGETS = ("sim2real/sim/isaac/app.py", "sim2real/sim/isaac/backend.py", "sim2real/sim/isaac/executor.py")
CHECKED_ROOT = "isaacsim"
#: Names ``isaacsim/__init__.py`` re-exports at run time (``AppFramework, SimulationApp = expose_api()``).
RUNTIME_REEXPORTS = {("isaacsim", "SimulationApp"): ("isaacsim.simulation_app", "SimulationApp")}
EXTERNAL_ROOTS = {
    "omni": "not in any PyPI wheel of this release (Kit extension cache)",
    "pxr": "USD (pxr), not an isaacsim module",
    "carb": "Carbonite, not an isaacsim module",
    "warp": "NVIDIA Warp, not an isaacsim module",
}


# ------------------------------------------------------------------------ release index
def extract_wheels(wheels: Path) -> list[Path]:
    """Extract the ``.py`` files of every wheel in ``wheels`` (once); return the extraction dirs."""
    found = sorted(wheels.glob("isaacsim*.whl"))
    if not found:
        raise SystemExit(f"no isaacsim*.whl in {wheels}; see this script's docstring for the download command")
    out = []
    for wheel in found:
        target = wheels / ".extracted" / wheel.stem
        marker = target / ".done"
        if not marker.exists():
            with zipfile.ZipFile(wheel) as archive:
                for name in archive.namelist():
                    if name.endswith(".py"):
                        archive.extract(name, target)
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text(wheel.name)
        out.append(target)
    return out


@dataclass
class Definition:
    """What a name resolves to in the release sources."""

    kind: str  # module | class | function | assign
    module: str
    name: str
    node: ast.AST | None = None
    deprecated: bool = False


class ReleaseIndex:
    """Module name -> source file over the extracted wheels, with name resolution."""

    def __init__(self, extracted: list[Path]) -> None:
        self.roots: list[tuple[Path, bool]] = []
        self.wheels = [p.name for p in extracted]
        for base in extracted:
            if (base / "isaacsim" / "__init__.py").exists():
                self.roots.append((base, False))  # the kernel's top-level package
            for kind in ("exts", "extsDeprecated"):
                for ext in sorted((base / "isaacsim" / kind).glob("*")):
                    if ext.is_dir():
                        self.roots.append((ext, kind == "extsDeprecated"))
        self._trees: dict[Path, ast.Module] = {}

    def module_file(self, module: str) -> tuple[Path, bool] | None:
        rel = Path(*module.split("."))
        for root, deprecated in self.roots:
            for candidate in (root / rel.with_suffix(".py"), root / rel / "__init__.py"):
                if candidate.is_file():
                    return candidate, deprecated
        return None

    def is_package_dir(self, module: str) -> bool:
        rel = Path(*module.split("."))
        return any((root / rel).is_dir() for root, _ in self.roots)

    def tree(self, path: Path) -> ast.Module:
        if path not in self._trees:
            self._trees[path] = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
        return self._trees[path]

    def files_under(self, wheel_prefix: str) -> list[Path]:
        return [p for root, _ in self.roots if wheel_prefix in str(root) for p in root.rglob("*.py")]

    @staticmethod
    def _absolute(module: str, is_package: bool, node: ast.ImportFrom) -> str:
        if not node.level:
            return node.module or ""
        parts = module.split(".")
        if not is_package:
            parts = parts[:-1]
        parts = parts[: len(parts) - (node.level - 1)] if node.level > 1 else parts
        return ".".join(parts + ([node.module] if node.module else []))

    def resolve(self, module: str, name: str, depth: int = 0) -> Definition | None:
        """Resolve ``module.name`` (function, class, assignment or submodule)."""
        if depth > 12:
            return None
        if (module, name) in RUNTIME_REEXPORTS:
            target = self.resolve(*RUNTIME_REEXPORTS[(module, name)], depth + 1)
            return target
        located = self.module_file(module)
        if located is not None:
            path, deprecated = located
            tree = self.tree(path)
            is_package = path.name == "__init__.py"
            for node in _top_level(tree):
                if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name:
                    kind = "class" if isinstance(node, ast.ClassDef) else "function"
                    return Definition(kind, module, name, node, deprecated)
                if isinstance(node, ast.Assign | ast.AnnAssign):
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    for target in targets:
                        names = [t.id for t in ast.walk(target) if isinstance(t, ast.Name)]
                        if name in names:
                            return Definition("assign", module, name, node, deprecated)
            for node in _top_level(tree):
                if isinstance(node, ast.ImportFrom):
                    source = self._absolute(module, is_package, node)
                    for alias in node.names:
                        if alias.name == "*":
                            if name in self.public_names(source):
                                found = self.resolve(source, name, depth + 1)
                                if found is not None:
                                    return found
                        elif (alias.asname or alias.name) == name:
                            if self.module_file(f"{source}.{alias.name}") or self.is_package_dir(
                                f"{source}.{alias.name}"
                            ):
                                return Definition("module", f"{source}.{alias.name}", name)
                            return self.resolve(source, alias.name, depth + 1)
                elif isinstance(node, ast.Import):
                    for alias in node.names:
                        if alias.asname == name:
                            return Definition("module", alias.name, name)
        submodule = f"{module}.{name}"
        if self.module_file(submodule) or self.is_package_dir(submodule):
            return Definition("module", submodule, name)
        return None

    def public_names(self, module: str) -> set[str]:
        located = self.module_file(module)
        if located is None:
            return set()
        tree = self.tree(located[0])
        for node in _top_level(tree):
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
            ):
                try:
                    return set(ast.literal_eval(node.value))
                except ValueError:
                    break
        names: set[str] = set()
        for node in _top_level(tree):
            if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                names.add(node.name)
            elif isinstance(node, ast.Assign):
                names.update(t.id for target in node.targets for t in ast.walk(target) if isinstance(t, ast.Name))
            elif isinstance(node, ast.ImportFrom):
                names.update(a.asname or a.name for a in node.names if a.name != "*")
        return {n for n in names if not n.startswith("_")}

    def members(self, definition: Definition, depth: int = 0) -> dict[str, tuple[ast.AST, Definition]]:
        """Attributes of a class and its bases (first definition wins, as in the MRO)."""
        out: dict[str, tuple[ast.AST, Definition]] = {}
        node = definition.node
        if not isinstance(node, ast.ClassDef) or depth > 12:
            return out
        for item in node.body:
            if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                out.setdefault(item.name, (item, definition))
            elif isinstance(item, ast.Assign | ast.AnnAssign):
                targets = item.targets if isinstance(item, ast.Assign) else [item.target]
                for target in targets:
                    if isinstance(target, ast.Name):
                        out.setdefault(target.id, (item, definition))
        for item in ast.walk(node):  # instance attributes: self.x = ...
            is_store = isinstance(item, ast.Attribute) and isinstance(item.ctx, ast.Store)
            if is_store and isinstance(item.value, ast.Name) and item.value.id == "self":
                out.setdefault(item.attr, (item, definition))
        for base in node.bases:
            base_name = _dotted(base)
            if base_name is None:
                continue
            head, _, rest = base_name.partition(".")
            resolved = self.resolve(definition.module, head)
            if resolved is not None and rest and resolved.kind == "module":
                resolved = self.resolve(resolved.module, rest)
            if resolved is not None and resolved.kind == "class":
                for key, value in self.members(resolved, depth + 1).items():
                    out.setdefault(key, value)
        return out


def _display(path: Path) -> str:
    """``path`` relative to the repository when inside it."""
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def _top_level(tree: ast.Module) -> list[ast.stmt]:
    """Top-level statements, including those inside top-level ``if`` / ``try`` blocks."""
    out: list[ast.stmt] = []
    stack = list(tree.body)
    while stack:
        node = stack.pop(0)
        out.append(node)
        if isinstance(node, ast.If | ast.Try):
            stack[0:0] = [*node.body, *getattr(node, "orelse", []), *getattr(node, "finalbody", [])]
            for handler in getattr(node, "handlers", []):
                stack[0:0] = handler.body
    return out


def _dotted(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        head = _dotted(node.value)
        return f"{head}.{node.attr}" if head else None
    return None


# ------------------------------------------------------------------------- signatures
def signature_problems(func: ast.FunctionDef | ast.AsyncFunctionDef, call: ast.Call, bound: bool) -> list[str]:
    """Keyword / positional mismatches of ``call`` against ``func``'s parameters."""
    args = func.args
    decorators = {_dotted(d) for d in func.decorator_list}
    positional = [a.arg for a in (*args.posonlyargs, *args.args)]
    if bound and "staticmethod" not in decorators and positional:
        positional = positional[1:]
    keyword_ok = {a.arg for a in (*args.args, *args.kwonlyargs)} - {a.arg for a in args.posonlyargs}
    problems = []
    starred = any(isinstance(a, ast.Starred) for a in call.args)
    double_starred = any(k.arg is None for k in call.keywords)
    for keyword in call.keywords:
        if keyword.arg is not None and keyword.arg not in keyword_ok and args.kwarg is None:
            problems.append(f"unknown keyword {keyword.arg!r}")
    if not starred and args.vararg is None and len(call.args) > len(positional):
        problems.append(f"{len(call.args)} positional arguments, at most {len(positional)} accepted")
    if not starred and not double_starred:
        n_defaults = len(args.defaults)
        required = positional[: len(positional) - n_defaults] if n_defaults else positional
        given = set(positional[: len(call.args)]) | {k.arg for k in call.keywords}
        missing = [p for p in required if p not in given]
        missing += [
            a.arg for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True) if d is None and a.arg not in given
        ]
        if missing:
            problems.append(f"missing required arguments {missing}")
    return problems


# ---------------------------------------------------------------------------- typing
@dataclass(frozen=True)
class Type:
    """``isaac`` (a release class), ``project`` (a class in the checked files), ``external``
    (a Protocol describing an uncheckable API), ``container`` (of ``inner``) or ``returned``
    (an untyped result of ``name``)."""

    kind: str
    name: str
    module: str = ""
    inner: Type | None = None


@dataclass
class Row:
    where: str
    api: str
    status: str  # OK | MISSING | UNCHECKED
    detail: str = ""


@dataclass
class ProjectClass:
    node: ast.ClassDef
    file: str
    aliases: dict[str, tuple[str, str | None]]
    fields: dict[str, ast.expr] = field(default_factory=dict)
    returns: dict[str, ast.expr | None] = field(default_factory=dict)
    external: str | None = None


class Checker:
    """Walks the target files and produces one :class:`Row` per API use."""

    def __init__(self, index: ReleaseIndex, targets: list[Path]) -> None:
        self.index = index
        self.targets = targets
        self.rows: list[Row] = []
        self.trees = {t: ast.parse(t.read_text()) for t in targets}
        self.classes: dict[str, ProjectClass] = {}
        self.functions: dict[str, ast.expr | None] = {}
        for path, tree in self.trees.items():
            aliases = self._aliases(tree)
            for node in ast.walk(tree):
                if isinstance(node, ast.ClassDef):
                    self._add_project_class(node, path, aliases)
            for node in tree.body:
                if isinstance(node, ast.FunctionDef):
                    self.functions[node.name] = node.returns
        self.replicator_sources = "\n".join(
            p.read_text(errors="replace") for p in self.index.files_under("isaacsim_replicator")
        )

    def _add_project_class(self, node: ast.ClassDef, path: Path, aliases: dict[str, tuple[str, str | None]]) -> None:
        info = ProjectClass(node, _display(path), aliases)
        if any(_dotted(b) == "Protocol" for b in node.bases):
            doc = ast.get_docstring(node) or node.name
            info.external = doc.split(":")[0]
        for item in node.body:
            if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                info.fields[item.target.id] = item.annotation
            elif isinstance(item, ast.FunctionDef):
                info.returns[item.name] = item.returns
                for sub in ast.walk(item):
                    if (isinstance(sub, ast.AnnAssign) and isinstance(sub.target, ast.Attribute)
                            and isinstance(sub.target.value, ast.Name) and sub.target.value.id == "self"):  # fmt: skip
                        info.fields[sub.target.attr] = sub.annotation
        self.classes[node.name] = info

    # ------------------------------------------------------------------ per file
    def run(self) -> list[Row]:
        for path, tree in self.trees.items():
            self.file = _display(path)
            self.aliases = self._aliases(tree)
            self._check_imports(tree)
            self._visit_scope(tree.body, env={}, cls=None)
        return self.rows

    def _aliases(self, tree: ast.Module) -> dict[str, tuple[str, str | None]]:
        """Local name -> (module, symbol or None) for every import of a checked or external root."""
        out: dict[str, tuple[str, str | None]] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    root = alias.name.split(".")[0]
                    if root == CHECKED_ROOT or root in EXTERNAL_ROOTS:
                        out[alias.asname or root] = (alias.name if alias.asname else root, None)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                root = node.module.split(".")[0]
                if root == CHECKED_ROOT or root in EXTERNAL_ROOTS:
                    for alias in node.names:
                        out[alias.asname or alias.name] = (node.module, alias.name)
        return out

    def _where(self, node: ast.AST) -> str:
        return f"{self.file}:{getattr(node, 'lineno', 0)}"

    def _check_imports(self, tree: ast.Module) -> None:
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    self._check_module(alias.name, node)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found = self._check_module(node.module, node)
                for alias in node.names if found else []:
                    self._check_symbol(node.module, alias.name, node, "import")

    def _check_module(self, module: str, node: ast.AST) -> bool:
        root = module.split(".")[0]
        if root in EXTERNAL_ROOTS:
            self.rows.append(Row(self._where(node), module, "UNCHECKED", EXTERNAL_ROOTS[root]))
            return False
        if root != CHECKED_ROOT:
            return False
        located = self.index.module_file(module)
        if located is None and not self.index.is_package_dir(module):
            self.rows.append(Row(self._where(node), module, "MISSING", "module not found in the wheels"))
            return False
        detail = "module" + (" (deprecated extension)" if located and located[1] else "")
        self.rows.append(Row(self._where(node), module, "OK", detail))
        return True

    def _check_symbol(self, module: str, name: str, node: ast.AST, how: str) -> Definition | None:
        found = self.index.resolve(module, name)
        api = f"{module}.{name}"
        if found is None:
            self.rows.append(Row(self._where(node), api, "MISSING", f"{how}: not defined in {module}"))
            return None
        detail = f"{how}: {found.kind} in {found.module}" + (" (deprecated extension)" if found.deprecated else "")
        self.rows.append(Row(self._where(node), api, "OK", detail))
        return found

    # ------------------------------------------------------------------- typing
    def _annotation_types(self, node: ast.expr | None, owner: str | None = None) -> set[Type]:
        """Types named by an annotation; ``owner`` = the project class whose file's imports apply."""
        if node is None:
            return set()
        aliases = self.classes[owner].aliases if owner in self.classes else self.aliases
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return self._annotation_types(ast.parse(node.value, mode="eval").body, owner)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
            return self._annotation_types(node.left, owner) | self._annotation_types(node.right, owner)
        if isinstance(node, ast.Subscript):
            container = _dotted(node.value)
            args = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
            if container in ("dict", "Mapping") and len(args) == 2:
                return {Type("container", "dict", inner=t) for t in self._annotation_types(args[1], owner)}
            if container in ("list", "Sequence", "tuple") and args:
                return {Type("container", container, inner=t) for t in self._annotation_types(args[0], owner)}
            return set()
        name = _dotted(node)
        if name is None:
            return set()
        if name in aliases:
            module, symbol = aliases[name]
            if symbol is not None and module.split(".")[0] == CHECKED_ROOT:
                found = self.index.resolve(module, symbol)
                if found is not None and found.kind == "class":
                    return {Type("isaac", symbol, found.module)}
            return set()
        short = name.rsplit(".", 1)[-1]
        if short in self.classes:
            info = self.classes[short]
            return {Type("external" if info.external else "project", short)}
        return set()

    def _expr_types(self, node: ast.expr, env: dict[str, set[Type]], cls: str | None) -> set[Type]:
        if isinstance(node, ast.Name):
            return set(env.get(node.id, set()))
        if isinstance(node, ast.Attribute):
            if isinstance(node.value, ast.Name) and node.value.id == "self" and cls in self.classes:
                return self._annotation_types(self.classes[cls].fields.get(node.attr), cls)
            out: set[Type] = set()
            for owner in self._expr_types(node.value, env, cls):
                if owner.kind in ("project", "external") and owner.name in self.classes:
                    out |= self._annotation_types(self.classes[owner.name].fields.get(node.attr), owner.name)
            return out
        if isinstance(node, ast.Subscript):
            return {t.inner for t in self._expr_types(node.value, env, cls) if t.kind == "container" and t.inner}
        if isinstance(node, ast.Call):
            func = node.func
            name = _dotted(func)
            if name and name.split(".")[0] in self.aliases:
                target = self._resolve_alias_chain(name)
                if target is not None and target.kind == "class":
                    return {Type("isaac", target.name, target.module)}
                return {Type("returned", name)}
            if isinstance(func, ast.Name) and func.id in self.classes:
                return {Type("project", func.id)}
            if isinstance(func, ast.Name) and func.id in self.functions:
                return self._annotation_types(self.functions[func.id])
            if isinstance(func, ast.Attribute):
                owners = self._expr_types(func.value, env, cls)
                if isinstance(func.value, ast.Name) and func.value.id == "self" and cls in self.classes:
                    return self._annotation_types(self.classes[cls].returns.get(func.attr), cls)
                out = set()
                for owner in owners:
                    if owner.kind == "project" and owner.name in self.classes:
                        out |= self._annotation_types(self.classes[owner.name].returns.get(func.attr), owner.name)
                    elif owner.kind == "container" and func.attr == "values" and owner.inner:
                        out.add(Type("container", "list", inner=owner.inner))
                    elif owner.kind == "isaac":
                        out.add(Type("returned", f"{owner.name}.{func.attr}"))
                return out
        return set()

    def _resolve_alias_chain(self, dotted: str) -> Definition | None:
        head, *rest = dotted.split(".")
        module, symbol = self.aliases[head]
        if module.split(".")[0] != CHECKED_ROOT:
            return None
        current = self.index.resolve(module, symbol) if symbol else Definition("module", module, head)
        for part in rest:
            if current is None:
                return None
            if current.kind == "module":
                current = self.index.resolve(current.module, part)
            elif current.kind == "class":
                member = self.index.members(current).get(part)
                return Definition("member", current.module, part, member[0]) if member else None
            else:
                return None
        return current

    # ---------------------------------------------------------------- traversal
    def _visit_scope(self, body: list[ast.stmt], env: dict[str, set[Type]], cls: str | None) -> None:
        for node in body:
            if isinstance(node, ast.ClassDef):
                self._visit_scope(node.body, {}, node.name)
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                local: dict[str, set[Type]] = {}
                for arg in (*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs):
                    types = self._annotation_types(arg.annotation)
                    if types:
                        local[arg.arg] = types
                self._collect_env(node, local, cls)
                self._check_calls(node, local, cls)

    def _collect_env(self, func: ast.AST, env: dict[str, set[Type]], cls: str | None) -> None:
        for _ in range(2):  # twice: a later assignment may type an earlier name's source
            for node in ast.walk(func):
                if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                    env.setdefault(node.target.id, set()).update(self._annotation_types(node.annotation))
                    if node.value is not None:
                        env[node.target.id].update(
                            t for t in self._expr_types(node.value, env, cls) if t.kind != "returned"
                        )
                elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                    types = self._expr_types(node.value, env, cls)
                    if types:
                        env.setdefault(node.targets[0].id, set()).update(types)
                elif isinstance(node, ast.For):
                    iterated = self._expr_types(node.iter, env, cls)
                    inner = {t.inner for t in iterated if t.kind == "container" and t.inner}
                    if isinstance(node.target, ast.Name) and inner:
                        env.setdefault(node.target.id, set()).update(inner)
                    is_items = isinstance(node.iter, ast.Call) and isinstance(node.iter.func, ast.Attribute) and \
                        node.iter.func.attr == "items"  # fmt: skip
                    if is_items and isinstance(node.target, ast.Tuple) and len(node.target.elts) == 2:
                        owners = self._expr_types(node.iter.func.value, env, cls)  # type: ignore[union-attr]
                        values = {t.inner for t in owners if t.kind == "container" and t.inner}
                        value_target = node.target.elts[1]
                        if isinstance(value_target, ast.Name) and values:
                            env.setdefault(value_target.id, set()).update(values)

    def _check_calls(self, func: ast.AST, env: dict[str, set[Type]], cls: str | None) -> None:
        seen_attrs: set[int] = set()
        for node in ast.walk(func):
            if isinstance(node, ast.Call):
                self._check_call(node, env, cls)
                if isinstance(node.func, ast.Attribute):
                    seen_attrs.add(id(node.func))
        for node in ast.walk(func):  # attribute reads (properties, fields) on typed instances
            if isinstance(node, ast.Attribute) and id(node) not in seen_attrs and isinstance(node.ctx, ast.Load):
                for owner in self._expr_types(node.value, env, cls):
                    if owner.kind == "isaac":
                        self._check_member(owner, node.attr, node, None)

    def _check_call(self, call: ast.Call, env: dict[str, set[Type]], cls: str | None) -> None:
        func = call.func
        name = _dotted(func)
        if name and name.split(".")[0] in self.aliases:
            head = name.split(".")[0]
            module, symbol = self.aliases[head]
            root = module.split(".")[0]
            if root in EXTERNAL_ROOTS:
                full = ".".join([module] + ([symbol] if symbol else []) + name.split(".")[1:])
                self.rows.append(Row(self._where(call), full, "UNCHECKED", self._evidence(name, call)))
                return
            self._check_chain(name, call)
            return
        if isinstance(func, ast.Attribute):
            for owner in self._expr_types(func.value, env, cls):
                if owner.kind == "isaac":
                    self._check_member(owner, func.attr, call, call)
                elif owner.kind == "external":
                    label = self.classes[owner.name].external or owner.name
                    declared = self.classes[owner.name].returns
                    status = "UNCHECKED" if func.attr in declared else "MISSING"
                    detail = f"{label}; declared by protocol {owner.name}" if status == "UNCHECKED" else (
                        f"not declared by protocol {owner.name}")  # fmt: skip
                    self.rows.append(Row(self._where(call), f"{owner.name}.{func.attr}", status, detail))
                elif owner.kind == "returned":
                    self.rows.append(Row(self._where(call), f"({owner.name}(...)).{func.attr}", "UNCHECKED",
                                         "method of an untyped return value"))  # fmt: skip

    def _check_chain(self, dotted: str, call: ast.Call) -> None:
        head, *rest = dotted.split(".")
        module, symbol = self.aliases[head]
        if symbol is None and not rest:
            return
        if symbol is None:
            current = Definition("module", module, head)
        else:
            current = self.index.resolve(module, symbol)
            if current is None:
                self.rows.append(Row(self._where(call), f"{module}.{symbol}", "MISSING", "not defined"))
                return
        path = [current.module if current.kind == "module" else f"{current.module}.{current.name}"]
        for i, part in enumerate(rest):
            last = i == len(rest) - 1
            if current.kind == "module":
                found = self.index.resolve(current.module, part)
                if found is None:
                    self.rows.append(Row(self._where(call), f"{current.module}.{part}", "MISSING", "not defined"))
                    return
                current = found
                path.append(part)
            elif current.kind == "class":
                self._check_member(Type("isaac", current.name, current.module), part, call, call if last else None,
                                   bound_via_class=True)  # fmt: skip
                return
            else:
                return
        api = f"{current.module}.{current.name}"
        if current.kind == "class":
            members = self.index.members(current)
            init = members.get("__init__")
            problems = signature_problems(init[0], call, True) if init and isinstance(init[0], ast.FunctionDef) else []
            self._row_for(call, api, f"constructor of {current.module}.{current.name}", problems, current.deprecated)
        elif current.kind == "function":
            assert isinstance(current.node, ast.FunctionDef | ast.AsyncFunctionDef)
            problems = signature_problems(current.node, call, False)
            self._row_for(call, api, "function", problems, current.deprecated)
        else:
            self.rows.append(Row(self._where(call), api, "OK", f"{current.kind} (signature not checked)"))

    def _check_member(self, owner: Type, attr: str, node: ast.AST, call: ast.Call | None,
                      bound_via_class: bool = False) -> None:  # fmt: skip
        definition = self.index.resolve(owner.module, owner.name)
        api = f"{owner.module}.{owner.name}.{attr}"
        if definition is None or definition.kind != "class":
            self.rows.append(Row(self._where(node), api, "MISSING", f"class {owner.name} not found"))
            return
        member = self.index.members(definition).get(attr)
        if member is None:
            self.rows.append(
                Row(self._where(node), api, "MISSING", f"no attribute {attr!r} in {owner.name} or its bases")
            )
            return
        member_node, where = member
        if call is not None and isinstance(member_node, ast.FunctionDef | ast.AsyncFunctionDef):
            decorators = {_dotted(d) for d in member_node.decorator_list}
            problems = [] if "property" in decorators else signature_problems(member_node, call, True)
            kind = "classmethod" if "classmethod" in decorators else "staticmethod" if "staticmethod" in decorators \
                else "method"  # fmt: skip
            self._row_for(call, api, f"{kind} defined in {where.module}.{where.name}", problems, where.deprecated)
        else:
            self.rows.append(Row(self._where(node), api, "OK", f"attribute defined in {where.module}.{where.name}"))

    def _row_for(self, call: ast.Call, api: str, detail: str, problems: list[str], deprecated: bool) -> None:
        keywords = sorted(k.arg for k in call.keywords if k.arg)
        text = detail + (f"; keywords {', '.join(keywords)}" if keywords else "")
        text += " (deprecated extension)" if deprecated else ""
        if problems:
            self.rows.append(Row(self._where(call), api, "MISSING", f"{detail}: {'; '.join(problems)}"))
        else:
            self.rows.append(Row(self._where(call), api, "OK", text))

    def _evidence(self, dotted: str, call: ast.Call) -> str:
        """For Replicator calls: how often the isaacsim-replicator wheel makes the same call."""
        module, _ = self.aliases[dotted.split(".")[0]]
        if not module.startswith("omni.replicator"):
            return EXTERNAL_ROOTS[module.split(".")[0]]
        tail = ".".join(dotted.split(".")[1:])
        count = len(re.findall(re.escape(tail) + r"\(", self.replicator_sources))
        text = f"omni.replicator.core is not on PyPI for 6.2; '{tail}(' appears {count}x in isaacsim-replicator sources"
        if call.args and isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str):
            name = call.args[0].value
            uses = len(re.findall(r"get_annotator\(\s*[\"']" + re.escape(name) + r"[\"']", self.replicator_sources))
            text += f"; annotator {name!r} requested {uses}x there"
        keywords = [k.arg for k in call.keywords if k.arg]
        if keywords:  # the same call (or its _async twin) with every keyword used here
            calls = re.findall(re.escape(tail) + r"(?:_async)?\(([^)]*)\)", self.replicator_sources)
            same = sum(all(re.search(rf"\b{k}\s*=", args) for k in keywords) for args in calls)
            text += f"; with keywords {', '.join(keywords)} (or its _async twin) {same}x"
        return text


# --------------------------------------------------------------------------- extras
def check_launch_config(index: ReleaseIndex) -> list[Row]:
    """``launch_config`` keys vs ``SimulationApp.DEFAULT_LAUNCHER_CONFIG``."""
    sys.path.insert(0, str(REPO))
    from sim2real.sim.isaac.app import AppSettings, launch_config

    definition = index.resolve("isaacsim.simulation_app", "SimulationApp")
    if definition is None or not isinstance(definition.node, ast.ClassDef):
        return [Row("tools", "SimulationApp.DEFAULT_LAUNCHER_CONFIG", "MISSING", "SimulationApp not found")]
    keys: set[str] = set()
    for item in definition.node.body:
        if isinstance(item, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "DEFAULT_LAUNCHER_CONFIG"
                                                for t in item.targets):  # fmt: skip
            keys = {k.value for k in item.value.keys if isinstance(k, ast.Constant)}  # type: ignore[attr-defined]
    rows = []
    config = launch_config(AppSettings(active_gpu=0))
    for key in sorted(config):
        status = "OK" if key in keys else "MISSING"
        rows.append(Row("sim2real/sim/isaac/app.py", f"SimulationApp launch_config[{key!r}]", status,
                        "key of DEFAULT_LAUNCHER_CONFIG" if key in keys else "not a launcher config key"))  # fmt: skip
    return rows


def check_omnipbr_inputs(index: ReleaseIndex, executor: Path) -> list[Row]:
    """OmniPBR input names used with ``set_input_values`` vs the wrapper's declared inputs."""
    definition = index.resolve("isaacsim.core.experimental.materials", "OmniPbrMaterial")
    declared: set[str] = set()
    if definition is not None and definition.node is not None:
        for node in ast.walk(definition.node):
            is_inputs = isinstance(node, ast.Assign) and any(_dotted(t) == "self._inputs" for t in node.targets)
            if is_inputs and isinstance(node.value, ast.Dict):
                declared = {k.value for k in node.value.keys if isinstance(k, ast.Constant)}
    rows = []
    tree = ast.parse(executor.read_text())
    for node in ast.walk(tree):
        is_call = isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
        if is_call and node.func.attr == "set_input_values" and node.args and isinstance(node.args[0], ast.Constant):
            name = node.args[0].value
            status = "OK" if name in declared else "MISSING"
            detail = "declared by OmniPbrMaterial" if status == "OK" else "unknown input"
            rows.append(Row(f"{_display(executor)}:{node.lineno}", f"OmniPbrMaterial input {name!r}", status, detail))
    if not declared:
        rows.append(Row("tools", "OmniPbrMaterial inputs", "MISSING", "could not read the wrapper's inputs"))
    return rows


def print_table(rows: list[Row]) -> None:
    merged: dict[tuple[str, str, str], list[str]] = {}
    for row in rows:
        merged.setdefault((row.api, row.status, row.detail), []).append(row.where.rsplit("/", 1)[-1])
    width = min(max((len(api) for api, _, _ in merged), default=10), 78)
    print(f"{'status':9} {'API':{width}}  where / detail")
    print("-" * (width + 60))
    order = {"MISSING": 0, "OK": 1, "UNCHECKED": 2}
    for (api, status, detail), wheres in sorted(merged.items(), key=lambda kv: (order[kv[0][1]], kv[0][0])):
        sites = ", ".join(sorted(set(wheres)))
        print(f"{status:9} {api:{width}}  {sites}: {detail}")
    counts = Counter(r.status for r in rows)
    print("-" * (width + 60))
    print(f"{counts['OK']} OK, {counts['MISSING']} MISSING, {counts['UNCHECKED']} UNCHECKED")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wheels", type=Path, required=True, help="folder with the downloaded isaacsim-*.whl files")
    parser.add_argument("--targets", nargs="*", default=list(DEFAULT_TARGETS), help="files to check (repo-relative)")
    args = parser.parse_args(argv)
    extracted = extract_wheels(args.wheels)
    index = ReleaseIndex(extracted)
    targets = [(REPO / t).resolve() for t in args.targets]
    print(f"release sources: {', '.join(sorted(p.name for p in extracted))}")
    print(f"checked files:   {', '.join(_display(t) for t in targets)}\n")
    rows = Checker(index, targets).run()
    rows += check_launch_config(index)
    for target in targets:
        if "set_input_values" in target.read_text():
            rows += check_omnipbr_inputs(index, target)
    print_table(rows)
    return 1 if any(r.status == "MISSING" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
