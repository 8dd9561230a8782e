"""The engine's shape: no import cycles, no import-time hooks, nn only through the public API."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import nncli.autodiff as ad

ROOT = Path(ad.__file__).resolve().parents[1]  # the nncli package


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_imports(path: Path, modules: set[str]) -> set[str]:
    """The nncli modules ``path`` imports at module level (``from pkg import sub`` counts as sub)."""
    out = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name in modules)
        elif isinstance(node, ast.ImportFrom) and node.module in modules:
            subs = {f"{node.module}.{a.name}" for a in node.names} & modules
            out.update(subs or {node.module})
    return out


def graph() -> dict[str, set[str]]:
    paths = {module_name(p): p for p in ROOT.rglob("*.py")}
    modules = set(paths)
    return {name: module_imports(p, modules) - {name} for name, p in paths.items()}


def test_no_import_cycles_in_the_package():
    deps = graph()
    # a package's __init__ importing its own submodules is not a cycle: drop package -> child edges
    # before looking, but keep child -> package edges (importing the package from inside it).
    for name in deps:
        deps[name] = {d for d in deps[name] if not d.startswith(name + ".")}
    state: dict[str, int] = {}
    cycles = []

    def visit(n, path):
        state[n] = 1
        for d in sorted(deps.get(n, ())):
            if state.get(d) == 1:
                cycles.append(path[path.index(d):] + [d] if d in path else [n, d])
            elif d not in state:
                visit(d, path + [d])
        state[n] = 2

    for n in sorted(deps):
        if n not in state:
            visit(n, [n])
    assert not cycles, f"import cycles: {cycles}"


def test_tensor_operators_live_in_the_class_body():
    for name in ("__add__", "__mul__", "__matmul__", "__neg__", "__getitem__", "__lt__", "reshape", "sum", "mean"):
        assert name in ad.Tensor.__dict__
    source = (ROOT / "autodiff").rglob("*.py")
    for path in source:  # nothing sets attributes on classes of other modules when imported
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
                assert getattr(node.value.func, "id", None) != "setattr", f"{path}: module-level setattr"
            if isinstance(node, ast.Assign):
                for t in node.targets:
                    assert not isinstance(t, ast.Attribute), f"{path}:{node.lineno}: module-level attribute assignment"


def test_nn_uses_only_the_public_engine_api():
    bad = []
    for path in (ROOT / "nn").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("nncli.autodiff."):
                bad.append(f"{path.name}: from {node.module} import ...")
            if isinstance(node, ast.Attribute) and node.attr in ("_data", "_make", "_bump", "_version") and \
                    not (isinstance(node.value, ast.Name) and node.value.id == "self"):
                bad.append(f"{path.name}:{node.lineno}: .{node.attr}")
    assert not bad, bad


def test_importing_the_engine_registers_nothing_elsewhere():
    code = ("import numpy as np, nncli.autodiff.tensor as t; x = t.Tensor([1.0]); "
            "print(type(x + x).__name__, type(x[0]).__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["Tensor", "Tensor"]  # operators work with no other module imported first
