"""The layer contract of pyproject.toml: it holds, it covers every module, and one upward import breaks it.

Layers from the bottom: the kernel (annotator.errors, .files, .vocabulary) -> dataset -> model -> annotator's
services -> annotator.cli. import-linter reads every import statement, those inside functions and under
`if TYPE_CHECKING:` included; `test_no_function_local_import_climbs` checks the function-local ones once more with
nothing but the standard library, so that rule does not rest on the tool alone.
"""

from __future__ import annotations

import ast
import os
import pkgutil
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ROOT_PACKAGES = ("annotator", "dataset", "model")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
TIMEOUT_S = 120


def _contracts() -> dict[str, dict]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    return {contract["id"]: contract for contract in config["contracts"]}


def _layers() -> list[set[str]]:
    """The modules of each layer, top layer first (optional ones unwrapped from their parentheses)."""
    layers = []
    for layer in _contracts()["layers"]["layers"]:
        delimiter = "|" if "|" in layer else ":"
        layers.append({name.strip().strip("()") for name in layer.split(delimiter)})
    return layers


def _lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--config", "pyproject.toml"],
        cwd=cwd,
        env={**os.environ, "COLUMNS": "200"},  # no wrapping inside an import chain
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )


def test_the_contract_holds_on_the_tree() -> None:
    result = _lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_module_of_annotator_is_in_a_layer() -> None:
    # A module added to annotator/ later must take a place in the stack, or nothing would check its imports.
    layered = set().union(*_layers())
    children = {f"annotator.{module.name}" for module in pkgutil.iter_modules([str(REPO / "annotator")])}
    missing = sorted(children - layered)
    assert not missing, f"put {missing} in a layer of the 'layers' contract in pyproject.toml"
    assert {"dataset", "model"} <= layered


def _copy_packages(destination: Path) -> Path:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in ROOT_PACKAGES:
        shutil.copytree(REPO / package, destination / package, ignore=ignore)
    shutil.copy2(REPO / "pyproject.toml", destination / "pyproject.toml")
    return destination


def _append_function_local_import(module_file: Path, statement: str) -> int:
    """Append a function importing `statement` inside its body; returns the line of the import."""
    source = module_file.read_text()
    if not source.endswith("\n"):
        source += "\n"
    lines = source.count("\n")
    module_file.write_text(source + f"\n\ndef _climbs_a_layer() -> None:\n    {statement}  # noqa: F401\n")
    return lines + 4


@pytest.mark.parametrize(
    ("module", "statement", "importer", "imported"),
    [
        ("dataset/split.py", "import annotator.store", "dataset.split", "annotator.store"),
        ("dataset/__init__.py", "import model.networks", "dataset", "model.networks"),
        ("model/__init__.py", "from annotator import __version__", "model", "annotator"),
        ("annotator/store/__init__.py", "import annotator.cli", "annotator.store", "annotator.cli"),
    ],
    ids=["dataset-to-services", "dataset-to-model", "model-to-annotator-package", "services-to-cli"],
)
def test_one_upward_import_breaks_the_contract(
    tmp_path: Path, module: str, statement: str, importer: str, imported: str
) -> None:
    tree = _copy_packages(tmp_path)
    line = _append_function_local_import(tree / module, statement)
    result = _lint_imports(tree)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert f"{importer} -> {imported} (l.{line})" in output, output


def _layer_rank(module: str, layers: list[set[str]]) -> int | None:
    """0 for the bottom layer upwards; None for a module in no layer (annotator/__init__, third parties)."""
    for rank, names in enumerate(reversed(layers)):
        if any(module == name or module.startswith(f"{name}.") for name in names):
            return rank
    return None


def _package_of(path: Path) -> list[str]:
    """The package a module's relative imports start from."""
    return list(path.relative_to(REPO).parent.parts)


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _function_local_imports(tree: ast.Module, package: list[str]) -> list[tuple[int, str]]:
    """(line, imported name) of every import statement inside a function body, relative ones resolved."""
    found = []
    for function in ast.walk(tree):
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(function):
            if isinstance(node, ast.Import):
                found.extend((node.lineno, alias.name) for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = package[: len(package) - node.level + 1] if node.level else []
                module = ".".join([*base, *([node.module] if node.module else [])])
                found.extend((node.lineno, f"{module}.{alias.name}") for alias in node.names)
    return found


def test_no_function_local_import_climbs() -> None:
    layers = _layers()
    climbing = []
    for package in ROOT_PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            importer = _module_name(path)
            importer_rank = _layer_rank(importer, layers)
            tree = ast.parse(path.read_text(), str(path))
            for line, imported in _function_local_imports(tree, _package_of(path)):
                imported_rank = _layer_rank(imported, layers)
                climbs = imported_rank is not None and importer_rank is not None and imported_rank > importer_rank
                # `from annotator import __version__`: the package itself sits in no layer, above dataset and model.
                into_package = imported.split(".")[0] == "annotator" and imported_rank is None
                if climbs or (into_package and package != "annotator"):
                    climbing.append(f"{path.relative_to(REPO)}:{line} imports {imported}")
    assert not climbing, "function-local imports that climb a layer:\n" + "\n".join(climbing)
