"""The layering rule of DESIGN.md, read from the source: data flows one way (file -> reader ->
tokenizer -> dataset -> task -> model -> kernels; evaluation and inference above tasks; cli on top),
and nothing below imports from above it, at module level or inside a function."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "biolm"

# What each layer may import from biolm (besides itself and biolm.errors).
ALLOWED = {
    "io": set(),
    "kernels": set(),
    "tokenizers": {"io"},
    "models": {"kernels", "tokenizers", "io"},
    "data": {"io", "tokenizers"},
    "domains": {"io", "tokenizers", "data"},
    "convert": {"io", "tokenizers", "data", "models", "kernels"},
    "tasks": {"io", "tokenizers", "data", "domains", "models", "kernels", "configs"},
    "inference": {"io", "tokenizers", "data", "domains", "models", "kernels"},
    "evaluation": {
        "io",
        "tokenizers",
        "data",
        "domains",
        "models",
        "kernels",
        "tasks",
        "inference",
        "configs",
    },
}


def biolm_imports(path: Path) -> list[tuple[int, str]]:
    """(line, top-level biolm sub-package) of every import of biolm in `path`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "biolm" and len(parts) > 1:
                found.append((node.lineno, parts[1]))
    return found


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_no_layer_imports_from_above_it(layer):
    root = PACKAGE / layer
    if not root.is_dir():
        pytest.skip(f"biolm/{layer} does not exist")
    allowed = ALLOWED[layer] | {layer, "errors"}
    wrong = [
        f"{path.relative_to(PACKAGE.parent)}:{line} imports biolm.{target}"
        for path in sorted(root.rglob("*.py"))
        for line, target in biolm_imports(path)
        if target not in allowed
    ]
    assert not wrong, "\n".join(wrong)


def test_models_and_kernels_never_import_lightning():
    wrong = [
        str(path.relative_to(PACKAGE.parent))
        for layer in ("models", "kernels")
        for path in sorted((PACKAGE / layer).rglob("*.py"))
        if "lightning" in path.read_text() and "import lightning" in path.read_text()
    ]
    assert not wrong, wrong


def test_library_code_does_not_print():
    """Library code logs (the CLI decides what reaches the terminal); only biolm/cli prints."""
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.relative_to(PACKAGE).parts[0] == "cli":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    assert not wrong, wrong


def test_importing_the_data_layer_does_not_load_the_model_stack():
    import subprocess
    import sys

    files = sorted((PACKAGE / "data").glob("*.py"))
    modules = [f"biolm.data.{p.stem}" for p in files if p.stem != "__init__"]
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in ["biolm.data", *modules])
        + "print(sorted(m for m in sys.modules if m.startswith(('biolm.models', 'biolm.kernels'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
