"""The report's sections come from one registry: the template iterates it (nav, anchors, partials),
every builder has the same signature, and a new entry shows up where it is registered."""

import json
import re

import pandas as pd
import pytest

from pipeline.catalog import Inputs
from pipeline.stages import RUN_ORDER
from pipeline.stages.report import STAGE, load_inputs as _load
from reports import build_page, html, render_report, sections
from reports.page import make_context
from reports.sections import SECTIONS, Section


def load_inputs(study, shap=True):
    """The report's inputs from a committed run, as the report stage gathers them."""
    from study_factory import catalog

    study = study.with_overrides([(["report", "shap"], shap)])
    run = catalog(study)
    return _load(Inputs(run, STAGE), study, run.run_record(), "missing", RUN_ORDER)


def test_the_template_addresses_no_section_by_position_and_every_section_has_a_partial():
    main = (html.TEMPLATES / "report.html.j2").read_text(encoding="utf-8")
    assert "sections[" not in main and not re.search(r'id="s\d', main)
    ids = [s.id for s in SECTIONS]
    assert len(set(ids)) == len(ids)
    for s in SECTIONS:
        assert re.fullmatch(r"[a-z][a-z0-9_-]*", s.id), s.id
        assert (html.TEMPLATES / "sections" / f"{s.id}.html.j2").is_file(), s.id


def test_every_builder_takes_inputs_and_context_and_returns_data_and_frames(binary_run):
    study, path = binary_run
    inputs = load_inputs(study)
    context = make_context(inputs)
    exported = set()
    for s in SECTIONS:
        _, tables = s.build(inputs, context)
        assert isinstance(tables, dict) and all(isinstance(t, pd.DataFrame) for t in tables.values()), s.id
        assert not exported & set(tables), s.id
        exported |= set(tables)
    assert exported == set(json.loads((path.parent / "tables.json").read_text()))


def _extra(inputs, context):
    return {"note": "<b>registered</b>", "n_cases": len(inputs.frame)}, {"extra": pd.DataFrame({"a": [1]})}


def test_a_registered_section_appears_in_nav_and_page_in_registry_order(binary_run, monkeypatch, tmp_path):
    (tmp_path / "sections").mkdir()
    (tmp_path / "sections" / "extra.html.j2").write_text('<p id="extra-note">{{ data.note }} {{ data.n_cases }}</p>\n')
    monkeypatch.setattr(html, "SEARCH_PATH", [html.TEMPLATES, tmp_path])
    registry = SECTIONS[:2] + [Section("extra", "An extra section", _extra)] + SECTIONS[2:]
    monkeypatch.setattr(sections, "SECTIONS", registry)
    page, tables = build_page(load_inputs(binary_run[0], shap=False))
    text = render_report(page)
    ids = [s.id for s in registry]
    nav = text[text.index("<nav>"):text.index("</nav>")]
    assert re.findall(r'<a href="#([^"]+)">', nav) == ids
    assert re.findall(r'<h2 id="([^"]+)">', text) == ids
    assert '<h2 id="extra">An extra section</h2>\n<p id="extra-note">&lt;b&gt;registered&lt;/b&gt;' in text
    assert text.index('id="extra-note"') < text.index('<h2 id="curves">')
    assert list(tables)[:list(tables).index("extra")] == ["classes", "modalities", "missing_clinical", "excluded",
                                                          "comparison", "cv_folds"]


def test_two_sections_exporting_one_table_name_is_refused(binary_run, monkeypatch):
    again = Section("again", "Again", lambda inputs, context: (None, {"pca": pd.DataFrame()}))
    monkeypatch.setattr(sections, "SECTIONS", SECTIONS + [again])
    with pytest.raises(ValueError, match="'again'.*pca"):
        build_page(load_inputs(binary_run[0], shap=False))


def test_every_element_id_on_the_page_is_unique(any_run):
    found = re.findall(r'\sid="([^"]+)"', any_run[1].read_text(encoding="utf-8"))
    assert len(found) == len(set(found)), sorted({i for i in found if found.count(i) > 1})
