"""Each optional-dependency extra covers its domain: a static scan of the imports.

For every domain (core and each extra of pyproject.toml) the test follows the imports of its
entry modules through atomlens, transitively, including imports inside functions, and checks
that every third-party import is declared by core or by that domain's extra. An import
guarded by ``except ImportError`` (a feature that stops with a one-line install hint) may
also name a package listed in ``OPTIONAL`` for that domain; imports under
``if TYPE_CHECKING:`` are not counted. This stands in for installing each extra alone in a
fresh environment (which needs the network).
"""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import re
import sys
import tomllib
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"

# Modules whose imports inside functions are not followed: the command-line dispatcher
# imports every command module to build its parser; each command module's own imports
# are checked in its domain below.
CLI = [
    "atomlens.cli",
    "atomlens.cli.__main__",
    "atomlens.cli.core",
    "atomlens.cli.benchmark",
    "atomlens.cli.explain",
    "atomlens.cli.descriptors",
    "atomlens.cli.diffusion",
    "atomlens.cli.amorphous_db",
    "atomlens.cli.spins",
    "atomlens.cli.configs",
]

# extra -> entry modules of its domain (followed deeply). "core" needs no extra.
DOMAINS: dict[str, list[str]] = {
    "core": [
        "atomlens",
        "atomlens.cli.core",
        "atomlens.cli.benchmark",
        "atomlens.cli.explain",
        "atomlens.cli.configs",
        "atomlens.training",
        "atomlens.training.trainer",
        "atomlens.training.benchmark",
        "atomlens.training.evaluate",
        "atomlens.inference",
        "atomlens.calculator",
        "atomlens.predict_files",
        "atomlens.explain",
        "atomlens.explain.report",
        "atomlens.explain.html",
        "atomlens.explain.capsules",
        "atomlens.explain.separability",
        "atomlens.graphs",
        "atomlens.structures",
        "atomlens.datasets",
        "atomlens.diffusion.msd",
        "atomlens.diffusion.arrhenius",
        "atomlens.diffusion.rdf",
        "atomlens.yamlconfig",
        "atomlens.paths",
    ],
    "spins": [
        "atomlens.spins",
        "atomlens.spins.workflow",
        "atomlens.spins.exact",
        "atomlens.spins.nd2fe14b",
        "atomlens.spins.figures",
        "atomlens.cli.spins",
    ],
    "mpi": ["atomlens.spins.parallel"],
    "md": [
        "atomlens.diffusion.amorphous",
        "atomlens.cli.diffusion",
        "atomlens.cli.amorphous_db",
        "atomlens.amorphous_db.plan",
        "atomlens.amorphous_db.jobs",
        "atomlens.amorphous_db.store",
        "atomlens.amorphous_db.show",
        "atomlens.amorphous_db.rdf",
    ],
    "cluster": ["atomlens.amorphous_db.build"],
    "descriptors": [
        "atomlens.descriptors",
        "atomlens.descriptors.features",
        "atomlens.descriptors.table_builder",
        "atomlens.descriptors.models",
        "atomlens.descriptors.sisso",
        "atomlens.descriptors.figures",
        "atomlens.descriptors.synthetic",
        "atomlens.cli.descriptors",
    ],
    "validate": ["atomlens.explain.validation", "atomlens.explain.orbitals"],
    "depict": ["atomlens.explain.depiction"],
    "qm9": ["atomlens.datasets.qm9"],
    "matbench": ["atomlens.datasets.matbench"],
    "pymatgen": ["atomlens.graphs.reference"],
}


# Guarded imports a domain may reach without declaring them: features of another extra that
# stop with an install hint when it is missing.
OPTIONAL: dict[str, set[tuple[str, str]]] = {
    "core": {  # and so every domain
        ("pandas", "atomlens.datasets.qm9"),  # data source qm9 (extra qm9)
        ("matminer", "atomlens.datasets.matbench"),  # source matbench:<task> (extra matbench)
        ("pyscf", "atomlens.explain.orbitals"),  # validate-attention (extra validate)
        ("rdkit", "atomlens.explain.depiction"),  # 2-D depictions in explain (extra depict)
        ("pymatgen", "atomlens.inference"),  # Prediction.to_pymatgen (extra pymatgen)
        ("sklearn", "atomlens.explain.separability"),  # t-SNE instead of PCA
    },
    "spins": {("mpi4py", "atomlens.spins.parallel")},  # coercivity --mpi (extra mpi)
    "md": {("dask", "atomlens.amorphous_db.build")},  # amorphous-db --executor dask (cluster)
}


def _requirement_name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[]", requirement.strip(), maxsplit=1)[0].lower()


@cache
def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


@cache
def _import_names() -> dict[str, set[str]]:
    """Distribution name (normalised) -> top-level import names, from installed metadata."""
    names: dict[str, set[str]] = {}
    for top, dists in importlib.metadata.packages_distributions().items():
        for dist in dists:
            names.setdefault(re.sub(r"[-_.]+", "-", dist).lower(), set()).add(top)
    return names


def _expand(requirements: list[str]) -> set[str]:
    """Distribution names of ``requirements``, with ``atomlens[...]`` self-references."""
    out: set[str] = set()
    for requirement in requirements:
        name = _requirement_name(requirement)
        if name == "atomlens":
            extras = re.search(r"\[(.*?)\]", requirement)
            for extra in extras.group(1).split(",") if extras else []:
                out |= _expand(_project()["optional-dependencies"][extra.strip()])
        else:
            out.add(re.sub(r"[-_.]+", "-", name))
    return out


def _allowed(extra: str) -> set[str]:
    dists = _expand(_project()["dependencies"])
    if extra != "core":
        dists |= _expand(_project()["optional-dependencies"][extra])
    tops: set[str] = set()
    for dist in dists:
        tops |= _import_names().get(dist, {dist.replace("-", "_")})
    return tops


def _module_file(name: str) -> Path | None:
    base = SRC.joinpath(*name.split("."))
    for path in (base / "__init__.py", base.with_suffix(".py")):
        if path.is_file():
            return path
    return None


def _guard(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> str | None:
    """``"import"`` inside a ``try`` catching ImportError, ``"typing"`` under TYPE_CHECKING."""
    child, parent = node, parents.get(node)
    while parent is not None:
        if isinstance(parent, ast.If) and "TYPE_CHECKING" in ast.unparse(parent.test):
            return "typing"
        if isinstance(parent, ast.Try) and child in parent.body:
            for handler in parent.handlers:
                caught = ast.unparse(handler.type) if handler.type else "BaseException"
                if "ImportError" in caught or "ModuleNotFoundError" in caught:
                    return "import"
        child, parent = parent, parents.get(parent)
    return None


@cache
def _imports(module: str, deep: bool) -> tuple[frozenset[str], dict[str, bool]]:
    """(atomlens modules, third-party top name -> guarded) that ``module`` imports."""
    path = _module_file(module)
    assert path is not None, f"no module {module}"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    internal: set[str] = set()
    external: dict[str, bool] = {}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Import | ast.ImportFrom):
            continue
        guard = _guard(node, parents)
        if guard == "typing":
            continue
        in_function = any(
            isinstance(p, ast.FunctionDef | ast.AsyncFunctionDef) for p in _ancestors(node, parents)
        )
        if in_function and not deep:
            continue
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        for target in targets:
            top = target.split(".")[0]
            if top == "atomlens":
                if _module_file(target) is not None:
                    internal.add(target)
            elif top not in sys.stdlib_module_names and top != "__future__":
                external[top] = external.get(top, True) and guard == "import"
    return frozenset(internal), external


def _ancestors(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> list[ast.AST]:
    out = []
    while node in parents:
        node = parents[node]
        out.append(node)
    return out


def scan(entries: list[str]) -> set[tuple[str, str, bool]]:
    """(third-party top name, importing atomlens module, guarded) reached from ``entries``."""
    found: set[tuple[str, str, bool]] = set()
    seen: set[tuple[str, bool]] = set()
    # entries are followed into functions; the command modules elsewhere only at top level
    stack = [(name, True) for name in entries]
    while stack:
        name, deep = stack.pop()
        parts = name.split(".")
        for i in range(1, len(parts)):  # importing a.b.c runs a and a.b first
            parent = ".".join(parts[:i])
            stack.append((parent, parent not in CLI))
        if (name, deep) in seen:
            continue
        seen.add((name, deep))
        internal, external = _imports(name, deep)
        found |= {(top, name, guarded) for top, guarded in external.items()}
        stack.extend((child, child not in CLI) for child in internal)
    return found


def test_domains_name_existing_modules_and_extras() -> None:
    extras = set(_project()["optional-dependencies"])
    assert set(DOMAINS) - {"core"} <= extras
    for entries in DOMAINS.values():
        for name in entries:
            assert _module_file(name) is not None, name
    for name in CLI:
        assert _module_file(name) is not None, name


@pytest.mark.parametrize("extra", sorted(DOMAINS))
def test_domain_imports_only_core_and_its_extra(extra: str) -> None:
    allowed = _allowed(extra)
    optional = OPTIONAL["core"] | OPTIONAL.get(extra, set())
    undeclared = sorted(
        (top, where)
        for top, where, guarded in scan(DOMAINS[extra])
        if top not in allowed and not (guarded and (top, where) in optional)
    )
    assert not undeclared, f"[{extra}] imports packages it does not declare: {undeclared}"


@pytest.mark.parametrize("extra", sorted(DOMAINS))
def test_domain_entry_modules_import(extra: str) -> None:
    for name in DOMAINS[extra]:
        importlib.import_module(name)


def test_scan_sees_imports_inside_functions_and_guards() -> None:
    source = (
        "def f():\n    from atomlens.descriptors.features import element_data\n"
        "def g():\n    try:\n        import pyscf\n    except ImportError:\n        pass\n"
        "if TYPE_CHECKING:\n    import pandas\n"
    )
    tree = ast.parse(source)
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    imports = [n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)]
    guards = {ast.unparse(n): _guard(n, parents) for n in imports}
    assert guards == {
        "from atomlens.descriptors.features import element_data": None,
        "import pyscf": "import",
        "import pandas": "typing",
    }


def test_scan_would_reject_md_reaching_into_descriptors() -> None:
    """The old amorphous.estimate_volume took radii from the descriptors domain (matminer)."""
    old_md = scan(["atomlens.diffusion.amorphous", "atomlens.descriptors.features"])
    assert ("matminer", "atomlens.descriptors.features", True) in old_md
    assert "matminer" not in _allowed("md")
    assert ("matminer", "atomlens.descriptors.features") not in OPTIONAL["core"]
    assert not any(top == "matminer" for top, _, _ in scan(DOMAINS["md"]))


def test_dev_extra_holds_every_domain_extra() -> None:
    dev = _expand(_project()["optional-dependencies"]["dev"])
    for extra in set(DOMAINS) - {"core"}:
        assert _expand(_project()["optional-dependencies"][extra]) <= dev, extra
