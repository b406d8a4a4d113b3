"""The rendered report of tiny fitted runs: sections, numbers, escaping, SHAP exports, self-containment,
and a headless browser that renders it without script errors."""

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser

import pandas as pd
import pytest

from conftest import HOSTILE
from study_factory import report_page
from reports.sections import SECTIONS


class _Cells(HTMLParser):
    """Collects the data-* attributes of the comparison table's cells and every element's tag."""

    def __init__(self):
        super().__init__()
        self.cells, self.tags, self.scripts = [], [], []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if tag == "td" and "data-kind" in attrs:
            self.cells.append(attrs)
        self._in_script = tag == "script"

    def handle_data(self, data):
        if self._in_script:
            self.scripts.append(data)

    def handle_endtag(self, tag):
        self._in_script = False


def _parse(path):
    parser = _Cells()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def test_every_section_heading_is_present(any_run):
    html = any_run[1].read_text(encoding="utf-8")
    for section in SECTIONS:
        assert f'<h2 id="{section.id}">{section.title}</h2>' in html


def test_comparison_table_numbers_match_metrics_json(any_run):
    study, path = any_run
    metrics = json.loads((study.run_dir / "models" / "metrics.json").read_text())
    cells = _parse(path).cells
    main = {n for n, r in metrics["learners"].items() if r["ablation"] is None}
    assert {c["data-learner"] for c in cells} == main == {"lr", "rf", "stack"}
    assert len(cells) == 2 * len(main) * 10
    for c in cells:
        rec = metrics["learners"][c["data-learner"]]
        if c["data-kind"] == "cv":
            want = rec["cv"][c["data-metric"]]["mean"]
        else:
            want = rec["holdout"][c["data-metric"]]
            low, high = rec["holdout_ci"][c["data-metric"]]
            assert float(c["data-low"]) == pytest.approx(low) and float(c["data-high"]) == pytest.approx(high)
        assert float(c["data-value"]) == pytest.approx(want, rel=1e-12)


def test_a_constant_clinical_column_is_a_note_not_a_clinical_variable(any_run):
    html = any_run[1].read_text(encoding="utf-8")
    assert ('<div class="note">Clinical column &#39;site&#39; was left out of the design by fuse: constant: '
            'every row with a value holds &#39;A&#39;.</div>') in html
    table = html.split('<table id="missing-clinical">')[1].split("</table>")[0]
    assert ">age<" in table and ">site<" not in table


def test_a_hostile_clinical_column_name_is_escaped(any_run):
    path = any_run[1]
    html = path.read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert HOSTILE not in html
    parsed = _parse(path)
    assert not any("alert(" in s for s in parsed.scripts)
    assert sum(tag == "script" for tag, _ in parsed.tags) == 1          # only the table-sorting script


def test_page_references_nothing_outside_itself(any_run):
    html = any_run[1].read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html, re.I)
    assert "<link" not in html and "@import" not in html


def test_grouped_shap_attributions_sum_to_output_minus_expectation(any_run):
    study, path = any_run
    cases = pd.read_csv(path.parent / "shap_cases.csv")
    assert 0 < len(cases) <= 8
    shap_cols = [c for c in cases.columns if c.startswith("shap:")]
    assert set(shap_cols) == {"shap:ultrasound/handcrafted", "shap:clinical: age", f"shap:clinical: {HOSTILE}"}
    assert (cases[shap_cols].sum(axis=1) - (cases.fx - cases.base)).abs().max() < 1e-6


def test_every_table_is_exported_beside_the_page(binary_run):
    folder = binary_run[1].parent
    for name in ("comparison", "cv_folds", "mcnemar", "delong", "ablation", "pca", "excluded", "shap_mean",
                 "confusion"):
        assert (folder / f"{name}.csv").is_file(), name
    excluded = pd.read_csv(folder / "excluded.csv")
    assert excluded.case.tolist() == ["c035"] and "unsure" in excluded.reason[0]


def test_hide_case_ids_replaces_every_case_id(binary_run, tmp_path):
    study, _ = binary_run
    path = report_page(study, hide_case_ids=True, shap=True)
    try:
        html = path.read_text(encoding="utf-8")
        assert not re.search(r"\bc0\d\d\b", html)
        assert "case " in html
        assert not pd.read_csv(path.parent / "shap_cases.csv").case.str.match(r"c0\d\d").any()
    finally:
        report_page(study)          # leave the shared run as the other tests expect it


def test_three_class_report_tests_one_class_against_the_rest(three_class_run):
    html = three_class_run[1].read_text(encoding="utf-8")
    assert "one-vs-rest" in html
    for cls in ("benign", "malignant", "normal"):
        assert f"ROC, {cls} vs rest, held-out" in html


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def test_headless_chromium_renders_the_comparison_table_without_script_errors(binary_run, tmp_path):
    assert CHROMIUM, "chromium is required for this test: apt-get install -y chromium"
    path = binary_run[1]
    result = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path}",
         "--enable-logging=stderr", "--v=0", "--dump-dom", path.as_uri()],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    dom = result.stdout
    assert 'id="comparison"' in dom and 'data-learner="stack"' in dom
    assert 'id="comparison-table"' in dom
    assert "Uncaught" not in result.stderr


def test_the_study_config_can_hide_case_ids(binary_run):
    from pipeline.config import load_study, parse_override

    study, _ = binary_run
    hidden = load_study(study.path, [parse_override("report.hide_case_ids=true")])
    try:
        html = report_page(hidden, shap=False).read_text(encoding="utf-8")
        assert "c035" not in html and "case " in html
    finally:
        report_page(study)


def test_provenance_lists_the_commands_that_reproduce_the_run(binary_run):
    study, path = binary_run
    html = path.read_text(encoding="utf-8")
    for stage in ("extract", "fuse", "fit", "report"):
        assert f"python run_pipeline.py {stage} -c {study.path}" in html
