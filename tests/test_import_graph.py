"""No import cycles between the project's modules."""

import ast
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported_modules(path: Path, package_modules: set[str]) -> set[str]:
    """Project modules imported by a file (absolute and relative imports, at any depth in the file)."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    imported = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        imported.update(name for name in names if name in package_modules and name != module)
    return imported


def _import_cycles(imports: dict[str, set[str]]) -> list[list[str]]:
    """Every import cycle, each as the list of modules on it (depth-first search over the import graph)."""
    cycles, finished, stack = [], set(), []

    def visit(name: str) -> None:
        stack.append(name)
        for target in sorted(imports.get(name, ())):
            if target in stack:
                cycles.append(stack[stack.index(target) :] + [target])
            elif target not in finished:
                visit(target)
        stack.pop()
        finished.add(name)

    for name in sorted(imports):
        if name not in finished:
            visit(name)
    return cycles


def test_no_import_cycles_between_project_modules():
    files = [p for folder in ("tdos", "datasets_scripts") for p in (ROOT / folder).rglob("*.py")]
    modules = {_module_name(path): path for path in files}
    imports = {name: _imported_modules(path, set(modules)) for name, path in modules.items()}
    # A submodule importing its own package (`from tdos import ...` inside tdos) is left out: Python initialises the
    # package before any of its submodules, so that edge never starts a circle.
    imports = {name: {t for t in targets if not name.startswith(t + ".")} for name, targets in imports.items()}
    assert not _import_cycles(imports), f"import cycles: {_import_cycles(imports)}"


