"""The layout rules, checked: import directions, and TensorFlow only where images are embedded."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from study_factory import make_study

REPO = Path(__file__).resolve().parents[1]
FORBIDDEN = {"features": {"pipeline", "models", "reports"}, "models": {"pipeline", "features", "reports"},
             "reports": {"pipeline", "features"}}
TF_ALLOWED = {REPO / "features" / "backbones" / "keras_family.py"}


def _imports(path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module.split(".")[0]


@pytest.mark.parametrize("package", ["features", "models", "reports", "pipeline"])
def test_import_directions(package):
    bad = []
    for path in (REPO / package).rglob("*.py"):
        for name in _imports(path):
            if name in FORBIDDEN.get(package, set()):
                bad.append(f"{path.relative_to(REPO)} imports {name}")
            if name in {"tensorflow", "keras"} and path not in TF_ALLOWED:
                bad.append(f"{path.relative_to(REPO)} imports {name}")
    assert bad == []


def _full_imports(path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{a.name}" for a in node.names)


def test_stages_never_import_stages():
    """A stage reads another's results through the catalog, never by importing it."""
    from pipeline.stages import STAGES

    modules = {f"pipeline.stages.{name}" for name in STAGES}
    bad = []
    for name in STAGES:
        path = REPO / "pipeline" / "stages" / f"{name}.py"
        own = f"pipeline.stages.{name}"
        bad += [f"{name} imports {m}" for m in _full_imports(path) if m in modules and m != own]
    assert bad == []


def test_only_the_catalog_and_the_transaction_spell_run_folder_paths():
    """Stage folders and file names come from the stage declarations, through the catalog."""
    spelled = []
    for path in (REPO / "pipeline").rglob("*.py"):
        text = path.read_text()
        for name in ('"models"', '"fused"', '"metrics.json"', '"design.h5"', '"holdout_predictions.csv"'):
            if name in text and path.name not in ("catalog.py",) and path.parent.name != "stages":
                spelled.append(f"{path.relative_to(REPO)}: {name}")
    assert spelled == []


def test_fit_and_report_do_not_load_image_libraries(tmp_path):
    fit = {"learners": ["lr"], "stack": False, "n_boot": 100, "n_jobs": 1, "pca_components": 3}
    study = make_study(tmp_path, n=16, backbones=("handcrafted",),
                       extra={"fuse": {"n_folds": 2, "test_size": 0.25}, "fit": fit})
    _modules_after(["--no-progress", "extract", "-c", str(study)])
    _modules_after(["--no-progress", "fuse", "-c", str(study)])
    for command in ("fit", "report"):
        code = ("import sys\nfrom pipeline.cli import main\n"
                f"main({['--no-progress', command, '-c', str(study)]!r})\n"
                "print(sorted(m for m in ('cv2', 'skimage', 'pydicom') if m in sys.modules))")
        out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
        assert out.stdout.strip().splitlines()[-1] == "[]", (command, out.stderr[-2000:])


def _modules_after(args, cwd=REPO):
    code = ("import sys\nfrom pipeline.cli import main\n"
            f"try:\n    main({args!r})\nexcept SystemExit:\n    pass\n"
            "print('TF' if 'tensorflow' in sys.modules else 'NO-TF')")
    out = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True)
    return out.stdout.strip().splitlines()[-1], out


@pytest.mark.parametrize("args", [["--help"], ["extract", "--help"], ["demo", "--help"], ["import", "--help"], ["run", "--help"],
                                  ["explain", "--help"]])
def test_help_does_not_import_tensorflow(args):
    assert _modules_after(args)[0] == "NO-TF"


def test_a_cached_extract_run_does_not_import_tensorflow(tmp_path):
    study = make_study(tmp_path, n=4, backbones=("efficientnetb0", "handcrafted"))
    first, out = _modules_after(["--no-progress", "extract", "-c", str(study)])
    assert first == "TF", out.stderr
    second, out = _modules_after(["--no-progress", "extract", "-c", str(study)])
    assert second == "NO-TF", out.stderr


def test_fuse_fit_and_report_do_not_import_tensorflow(tmp_path):
    fit = {"learners": ["lr"], "stack": False, "n_boot": 100, "n_jobs": 1, "pca_components": 3}
    study = make_study(tmp_path, n=16, backbones=("handcrafted",),
                       extra={"fuse": {"n_folds": 2, "test_size": 0.25}, "fit": fit})
    for command in ("extract", "fuse", "fit", "report"):
        loaded, out = _modules_after(["--no-progress", command, "-c", str(study)])
        assert loaded == "NO-TF", (command, out.stderr)


def test_import_does_not_import_tensorflow(tmp_path):
    make_study(tmp_path / "src", n=4)
    loaded, out = _modules_after(["import", "folder", str(tmp_path / "src" / "images"), "--out", str(tmp_path / "out")])
    assert loaded == "NO-TF", out.stderr
    assert (tmp_path / "out" / "manifest.csv").is_file()
