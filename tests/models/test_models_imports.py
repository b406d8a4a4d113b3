import ast
from pathlib import Path

import models

FORBIDDEN = {"features", "pipeline", "reports", "tensorflow", "keras"}


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_models_imports_neither_features_pipeline_reports_nor_tensorflow():
    package = Path(models.__file__).parent
    offenders = {p.name: sorted(imported_roots(p) & FORBIDDEN) for p in package.glob("*.py")}
    assert not {k: v for k, v in offenders.items() if v}
