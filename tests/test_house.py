"""The package's house rules that a reader cannot see from one file: every third-party module it
imports is a declared dependency, and the lower layers (io, physics, jobs) import no method, panel
or command line module."""

import ast
import re
import sys
from importlib import metadata
from pathlib import Path

import pytest

import napari_phase

ROOT = Path(__file__).resolve().parents[1]
PKG = Path(napari_phase.__file__).resolve().parent  # the package these tests import (src/ in a checkout)
#: Packages above io/physics/jobs: a lower module importing one of these runs the house backwards.
UPPER = ("ltem", "stem", "flowtie", "widgets", "cli", "demo", "bench", "training", "validate", "figures")
LOWER = ("io", "physics", "jobs", "result", "threads")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> tuple[set[str], set[str]]:
    """(core dependencies, optional ones) of pyproject.toml, normalised distribution names."""
    tomllib = pytest.importorskip("tomllib" if sys.version_info >= (3, 11) else "tomli")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    name = lambda req: _norm(re.split(r"[\s<>=!~;\[]", req, maxsplit=1)[0])  # noqa: E731
    core = {name(r) for r in project["dependencies"]}
    extra = {name(r) for reqs in project.get("optional-dependencies", {}).values() for r in reqs}
    return core, extra


def _imports(path: Path):
    """(absolute module name, at module level?) of every import in a source file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = ".".join(path.relative_to(PKG.parent).with_suffix("").parts[:-1])
    top = {id(n) for n in tree.body}
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                names = [".".join(base + ([node.module] if node.module else []))]
            else:
                names = [node.module]
        for n in names:
            yield n, id(node) in top


def _third_party():
    std = set(sys.stdlib_module_names)
    for path in sorted(PKG.rglob("*.py")):
        for mod, top in _imports(path):
            root = mod.split(".")[0]
            if root not in std and root != "napari_phase":
                yield path.relative_to(PKG.parent), root, top


def test_every_imported_package_is_declared():
    core, extra = _declared()
    dists = metadata.packages_distributions()
    missing = []
    for where, root, top in _third_party():
        names = {_norm(d) for d in dists.get(root, [])} | {_norm(root)}
        allowed = core if top else core | extra  # a module-level import must be a core dependency
        if not names & allowed:
            missing.append(f"{where}: {root} ({'module level' if top else 'inside a function'})")
    assert not missing, "imported but not declared in pyproject.toml:\n" + "\n".join(sorted(set(missing)))


def test_the_check_sees_the_panels_imports():
    """The scan above must find what it is meant to guard: superqt and qtpy in the panels, and
    torch at module level somewhere (else the test passes on an empty walk)."""
    seen = {(root, top) for _, root, top in _third_party()}
    assert {("superqt", True), ("qtpy", True), ("torch", True), ("numpy", True)} <= seen


@pytest.mark.parametrize("layer", LOWER)
def test_lower_layers_import_no_method_panel_or_cli(layer):
    paths = [PKG / f"{layer}.py"] if (PKG / f"{layer}.py").is_file() else sorted((PKG / layer).rglob("*.py"))
    assert paths, layer
    wrong = [f"{p.relative_to(PKG.parent)} imports {mod}" for p in paths for mod, _ in _imports(p)
             if mod.split(".")[0] == "napari_phase" and len(mod.split(".")) > 1 and mod.split(".")[1] in UPPER]
    assert not wrong, "\n".join(wrong)
