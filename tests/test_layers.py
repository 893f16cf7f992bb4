"""The package's layers: no module imports one above its own (lazy imports inside functions included)."""

import ast
from pathlib import Path
from tests.helpers.paths import REPO

PACKAGE = REPO / "bamir"

#: lowest first; a module may import its own layer and those below
LAYERS = [
    {"bamir", "bamir.utils", "bamir.metric_names", "bamir.console"},
    {"bamir.store", "bamir.tracking", "bamir.config"},
    {"bamir.data", "bamir.ownership"},
    {"bamir.features"},
    {"bamir.metrics", "bamir.samplers", "bamir.report", "bamir.callbacks", "bamir.loggers"},
    {"bamir.models", "bamir.datamodule"},
    {"bamir.checkpoints"},
    {"bamir.train", "bamir.coldstart", "bamir.ranking", "bamir.benchmark", "bamir.report_html"},
    {"bamir.cli"},
]


def _unit(module: str) -> str:
    """``bamir.features.image.stage`` -> ``bamir.features`` (a top-level module or package)."""
    return ".".join(module.split(".")[:2])


def _layer(module: str) -> int:
    unit = _unit(module)
    found = [i for i, layer in enumerate(LAYERS) if unit in layer]
    assert found, f"{unit} is in no layer of tests/test_layers.py: place it"
    return found[0]


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "bamir":
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "bamir")
    return found


def test_no_module_imports_a_layer_above_it():
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
        mine = _layer(module)
        for imported in _imports(path):
            if _layer(imported) > mine:
                wrong.append(f"{module} (layer {mine}) imports {imported} (layer {_layer(imported)})")
    assert not wrong, "\n".join(wrong)


def test_the_store_sits_below_data_and_features():
    assert _layer("bamir.store") < _layer("bamir.data") < _layer("bamir.features") < _layer("bamir.models")
