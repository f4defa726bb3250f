"""The package layout: no import cycles, one file per concept of the method, no oversized files or classes."""

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




# Each concept of the method is defined in exactly one file (the names as they stand in the code).
PAPER_CONCEPTS = {
    "prompt learner": r"^class TDOSPromptLearner\b",
    "context decoder": r"^class TDOSContextDecoder\b",
    "pixel decoder": r"^class TDOSPixelDecoder\b",
    "transformer decoder": r"^class TDOSTransformerDecoder\b",
    "OOD-slot merge": r"^def merge_ood_slot\b",
    "identity assignment": r"^    def identity_targets\b",
    "class / mask / Dice losses": r"^    def prediction_losses\b",
    "identity head loss": r"^    def identity_loss\b",
    "textual regulariser": r"^    def textual_regularization\b",
    "visual regulariser": r"^    def visual_regularization\b",
    "sliding window": r"^def slide_semantic_map\b",
}
MAX_FILE_LINES = 700
MAX_CLASS_LINES = 250  # lines of code, docstrings excluded


def _source_files() -> list[Path]:
    folders = ("tdos", "datasets_scripts", "metrics", "benchmarks")
    return [p for folder in folders for p in (ROOT / folder).rglob("*.py")] + [ROOT / "run_ood_segmentation.py"]


def test_each_paper_concept_is_defined_in_one_file():
    import re

    texts = {path: path.read_text(encoding="utf-8") for path in _source_files()}
    for concept, pattern in PAPER_CONCEPTS.items():
        files = [path.relative_to(ROOT) for path, text in texts.items() if re.search(pattern, text, re.MULTILINE)]
        assert len(files) == 1, f"{concept}: defined in {files}"


def test_no_oversized_files_or_classes():
    too_long = []
    for path in _source_files():
        text = path.read_text(encoding="utf-8")
        if text.count("\n") > MAX_FILE_LINES:
            too_long.append(f"{path.relative_to(ROOT)}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef) and _code_lines(node) > MAX_CLASS_LINES:
                too_long.append(f"{path.relative_to(ROOT)}: class {node.name} {_code_lines(node)} lines of code")
    assert not too_long, too_long


def _code_lines(node: ast.ClassDef) -> int:
    """Lines of a class without its docstrings (configs document every argument in theirs, as transformers' do)."""
    docstrings = [
        sub.body[0]
        for sub in ast.walk(node)
        if isinstance(sub, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and sub.body
        and isinstance(sub.body[0], ast.Expr)
        and isinstance(sub.body[0].value, ast.Constant)
        and isinstance(sub.body[0].value.value, str)
    ]
    return node.end_lineno - node.lineno + 1 - sum(doc.end_lineno - doc.lineno + 1 for doc in docstrings)
