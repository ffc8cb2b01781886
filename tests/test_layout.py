"""The package's shape: three parts without import cycles, a library that
imports no application dependency, and each activation parameter named in
few places (the table, the parser's schema example, the public signatures,
the stock reference)."""

import ast
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

from mlpbench import ops

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "mlpbench"


def test_import_mlpbench_needs_no_application_dependency():
    """Beyond what torch imports itself (torch.hub imports tqdm when it is there)."""
    code = ("import sys, torch; before = set(sys.modules); "
            "import mlpbench, mlpbench.models, mlpbench.reference; "
            "print(sorted(m for m in ('matplotlib', 'tqdm', 'torchvision') "
            "if m in set(sys.modules) - before))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_packaging_lists_every_package_and_the_extras_setup_installs():
    """A wheel holds only the packages pyproject names: each folder with an
    __init__.py must be there; and setup.sh's extras must exist (pip only
    warns about an unknown one)."""
    import re

    tomllib = pytest.importorskip("tomllib")  # Python 3.11 on

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    on_disk = {_module_name(init) for init in PACKAGE.rglob("__init__.py")}
    assert set(project["tool"]["setuptools"]["packages"]) == on_disk
    extras = re.search(r'-e "\.\[([a-z,]+)\]"', (ROOT / "scripts/setup.sh").read_text())
    assert extras, "setup.sh installs the package with its extras"
    assert set(extras.group(1).split(",")) <= set(project["project"]["optional-dependencies"])


def _module_name(path):
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path):
    """The mlpbench modules `path` imports, at any depth of its code."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("mlpbench")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([node.module] if node.module else []))
            if base.startswith("mlpbench"):
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    found.add(full if (ROOT / Path(*full.split("."))).with_suffix(".py").exists()
                              else base)
    # (A module's own packages are not an import of it: `from . import _C`.)
    return {m for m in found if m != name and not name.startswith(m + ".")}


def test_no_import_cycles():
    graph = {_module_name(p): _imports(p) for p in PACKAGE.rglob("*.py")}
    state = {}

    def visit(module, path):
        if state.get(module) == "done":
            return
        assert state.get(module) != "open", "import cycle: " + " -> ".join(path + [module])
        state[module] = "open"
        for dep in sorted(graph.get(module, ())):
            visit(dep, path + [module])
        state[module] = "done"

    for module in graph:
        visit(module, [])


def test_library_does_not_import_the_application():
    for name in ("__init__", "ops", "nn", "models", "reference"):
        deps = _imports(PACKAGE / f"{name}.py")
        assert not {d for d in deps if d.startswith(("mlpbench.lecture", "mlpbench.perf"))}, name


@pytest.mark.parametrize("param", ["negative_slope"])
def test_each_parameter_is_named_in_few_files(param):
    """The parameter table is the one list: the kernels, meta, autograd and
    autocast receive parsed structs, and models pass **kwargs through.
    (negative_slope stands for them all: alpha, pieces and approximate are
    also everyday words of other code.)"""
    def files(folder, suffixes):
        return sorted(str(p.relative_to(ROOT)) for p in folder.rglob("*")
                      if p.suffix in suffixes and param in p.read_text())
    csrc = files(ROOT / "csrc", {".h", ".cpp", ".cu", ".cuh"})
    python = files(PACKAGE, {".py"})
    assert len(csrc) <= 4, csrc
    assert len(python) <= 3, python


@pytest.mark.parametrize("fn", [ops.linear_act, ops.mlp, ops.activation, ops.activation_spec])
def test_public_signatures_take_the_parameters_in_the_tables_order(fn):
    """The wrappers pass the parameters to the spec builder in PARAMS' order."""
    names = [p for p in inspect.signature(fn).parameters if p in ops.PARAMS]
    assert names == [p for p in ops.PARAMS if p in names]
    for p in names:
        assert inspect.signature(fn).parameters[p].default == ops.DEFAULTS[p]
