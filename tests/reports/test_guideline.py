"""The TRIPOD+AI / CLAIM 2024 summary: items filled only from recorded facts, the rest left to the authors."""

import copy
import re

import numpy as np
import pytest

from reports.guideline import (AUTHORS, CLAIM, FILLED, SECTIONS, STATUSES, TRIPOD, guideline_items,
                               guideline_markdown)

FACTS = {
    "sources": [{"name": "BUSI", "manifest": "data/busi.csv", "n_rows": 780}],
    "dates": "2018-01 to 2018-12",
    "eligibility": {"excluded": [{"reason": "label normal", "n": 133}], "n_included": 647},
    "counts": {"classes": ["benign", "malignant"],
               "per_split": {"train": {"benign": 349, "malignant": 168},
                             "held-out": {"benign": 88, "malignant": 42},
                             "external:site_b": {"benign": 84, "malignant": 36}}},
    "missing": {"modalities": {"ultrasound": 3}, "clinical": {"age": 5},
                "handling": "median imputation with missingness indicators"},
    "model": {"learners": ["lr", "rf"], "stack": True, "meta": "lr", "pca": 32,
              "balancing": "SMOTE inside each training fold", "backbones": ["resnet50"],
              "weights": {"resnet50": "imagenet"}},
    "tuning": {"rf": {"n_estimators": [100, 300]}},
    "validation": {"cv": "5-fold patient-wise", "holdout": "20% patient-wise held-out, used once"},
    "internal": {"best": "stack", "auc": 0.8731, "ci": [0.801, 0.934]},
    "external": [{"name": "site_b", "auc": 0.792, "ci": [0.70, 0.87], "n": 120}],
    "calibration": {"stack": {"intercept": 0.05, "slope": 0.91}},
    "subgroups": ["age", "density"],
    "operating_point": {"rule": "sensitivity", "value": 0.9, "threshold": 0.31},
    "software": {"python": "3.11.7", "scikit-learn": "1.6.1"},
    "seed": 7,
    "code": "python run_pipeline.py run --config study.yaml",
    "outcome": "Malignancy confirmed by biopsy",
}


def _item(items, guideline, number):
    (found,) = [i for i in items if i["guideline"] == guideline and i["item"] == number]
    return found


@pytest.mark.parametrize("facts", [FACTS, {}], ids=["every fact", "no facts"])
def test_every_item_has_a_valid_status_guideline_and_section(facts):
    for item in guideline_items(facts):
        assert set(item) == {"guideline", "item", "topic", "status", "text", "section"}
        assert item["status"] in STATUSES and item["guideline"] in (TRIPOD, CLAIM) and item["topic"]
        assert item["section"] in SECTIONS or item["section"] == ""
        assert (item["status"] == FILLED) == bool(item["text"]) == bool(item["section"]), item


def test_items_are_unique_and_follow_both_checklists_numbering():
    items = guideline_items(FACTS)
    keys = [(i["guideline"], i["item"]) for i in items]
    assert len(keys) == len(set(keys))
    tripod = {int(re.match(r"\d+", n).group()) for g, n in keys if g == TRIPOD}
    claim = {int(n) for g, n in keys if g == CLAIM}
    assert tripod == set(range(1, 28)) and claim == set(range(1, 45))


@pytest.mark.parametrize("facts", [{}, None])
def test_no_item_is_filled_without_facts(facts):
    assert {i["status"] for i in guideline_items(facts)} == {AUTHORS}
    assert all(i["text"] == "" and i["section"] == "" for i in guideline_items(facts))


# (facts given, guideline, item, report section, strings the text must hold)
FILLS = [
    ({"sources": FACTS["sources"]}, TRIPOD, "5a", "provenance", ["BUSI", "780", "data/busi.csv"]),
    ({"sources": FACTS["sources"]}, CLAIM, "7", "provenance", ["BUSI", "780"]),
    ({"dates": FACTS["dates"]}, TRIPOD, "5b", "provenance", ["2018-01 to 2018-12"]),
    ({"eligibility": FACTS["eligibility"]}, TRIPOD, "6b", "summary", ["647", "133", "label normal"]),
    ({"eligibility": FACTS["eligibility"]}, CLAIM, "35", "summary", ["647", "133"]),
    ({"outcome": FACTS["outcome"]}, TRIPOD, "8a", "summary", ["biopsy"]),
    ({"counts": FACTS["counts"]}, TRIPOD, "21", "summary", ["train 517", "349", "168", "held-out 130"]),
    ({"counts": FACTS["counts"]}, TRIPOD, "10", "summary", ["517", "130", "external:site_b 120"]),
    ({"counts": FACTS["counts"]}, TRIPOD, "20c", "external", ["external:site_b 120", "84", "36"]),
    ({"counts": FACTS["counts"]}, CLAIM, "36", "summary", ["349", "88", "84"]),
    ({"missing": FACTS["missing"]}, TRIPOD, "11", "summary", ["ultrasound 3", "age 5", "median imputation"]),
    ({"missing": FACTS["missing"]}, CLAIM, "12", "summary", ["ultrasound 3", "age 5"]),
    ({"missing": FACTS["missing"]}, TRIPOD, "27a", "clinical", ["median imputation"]),
    ({"model": FACTS["model"]}, TRIPOD, "13", "provenance", ["SMOTE"]),
    ({"model": FACTS["model"]}, TRIPOD, "12b", "provenance", ["32"]),
    ({"model": FACTS["model"]}, CLAIM, "22", "provenance", ["resnet50", "imagenet", "32", "lr, rf"]),
    ({"model": FACTS["model"]}, CLAIM, "27", "comparison", ["meta-learner: lr"]),
    ({"model": FACTS["model"], "tuning": FACTS["tuning"]}, TRIPOD, "12c", "comparison",
     ["lr, rf", "n_estimators", "100, 300"]),
    ({"validation": FACTS["validation"]}, TRIPOD, "12a", "comparison", ["5-fold", "20%"]),
    ({"validation": FACTS["validation"]}, CLAIM, "20", "summary", ["patient", "5-fold", "20%"]),
    ({"internal": FACTS["internal"]}, CLAIM, "32", "comparison", ["stack", "0.873", "0.801", "0.934"]),
    ({"internal": FACTS["internal"]}, CLAIM, "29", "significance", ["0.801", "0.934"]),
    ({"external": FACTS["external"]}, CLAIM, "33", "external", ["site_b", "0.792", "0.700", "0.870", "120"]),
    ({"internal": FACTS["internal"], "external": FACTS["external"]}, TRIPOD, "23b", "external",
     ["0.873", "0.792"]),
    ({"calibration": FACTS["calibration"]}, TRIPOD, "23a", "comparison", ["stack", "0.05", "0.91"]),
    ({"subgroups": FACTS["subgroups"]}, TRIPOD, "14", "clinical", ["age", "density"]),
    ({"operating_point": FACTS["operating_point"]}, TRIPOD, "15", "clinical",
     ["0.310", "sensitivity", "0.9"]),
    ({"software": FACTS["software"]}, CLAIM, "23", "provenance", ["python 3.11.7", "scikit-learn 1.6.1"]),
    ({"seed": 7}, CLAIM, "24", "provenance", ["seed 7"]),
    ({"code": FACTS["code"]}, TRIPOD, "18f", "provenance", ["run_pipeline.py run --config study.yaml"]),
    ({"code": FACTS["code"], "software": FACTS["software"]}, CLAIM, "43", "provenance",
     ["run_pipeline.py", "scikit-learn 1.6.1"]),
    ({"ablations": ["images_only", "clinical_only"]}, CLAIM, "30", "ablations", ["images_only"]),
    ({"explainability": "SHAP values on the held-out cases"}, CLAIM, "31", "shap", ["SHAP"]),
]


@pytest.mark.parametrize("facts, guideline, number, section, expected", FILLS,
                         ids=[f"{g} {n}" for _, g, n, _, _ in FILLS])
def test_a_recorded_fact_fills_its_item_with_its_numbers(facts, guideline, number, section, expected):
    item = _item(guideline_items(facts), guideline, number)
    assert item["status"] == FILLED and item["section"] == section
    for text in expected:
        assert text in item["text"], (text, item["text"])


# Items that only one fact can fill: without it they go back to the authors, whatever else is known.
ONLY_FROM = [("sources", TRIPOD, "5a"), ("dates", TRIPOD, "5b"), ("eligibility", TRIPOD, "6b"),
             ("outcome", TRIPOD, "8a"), ("counts", TRIPOD, "21"), ("counts", TRIPOD, "20c"),
             ("subgroups", TRIPOD, "14"), ("operating_point", TRIPOD, "15"), ("code", TRIPOD, "18f"),
             ("internal", CLAIM, "32"), ("external", CLAIM, "33"), ("software", CLAIM, "23"),
             ("validation", CLAIM, "19")]


@pytest.mark.parametrize("key, guideline, number", ONLY_FROM, ids=[f"{g} {n}" for _, g, n in ONLY_FROM])
def test_an_absent_fact_leaves_its_item_to_the_authors(key, guideline, number):
    facts = {k: v for k, v in FACTS.items() if k != key}
    item = _item(guideline_items(facts), guideline, number)
    assert (item["status"], item["text"], item["section"]) == (AUTHORS, "", "")


@pytest.mark.parametrize("guideline, number", [
    (CLAIM, "14"), (CLAIM, "16"), (TRIPOD, "3b"), (CLAIM, "3"), (TRIPOD, "26"), (CLAIM, "40"),
    (TRIPOD, "17"), (TRIPOD, "18a"), (CLAIM, "38"), (CLAIM, "13")])
def test_what_a_run_cannot_know_stays_with_the_authors_even_with_every_fact(guideline, number):
    """Reference standard, intended use, limitations, ethics, funding, acquisition protocol."""
    assert _item(guideline_items(FACTS), guideline, number)["status"] == AUTHORS


@pytest.mark.parametrize("key, empty", [("sources", []), ("eligibility", {}), ("subgroups", []),
                                         ("external", []), ("software", {}), ("dates", None)])
def test_an_empty_fact_counts_as_absent(key, empty):
    assert guideline_items({key: empty}) == guideline_items({})


def test_metrics_that_could_not_be_computed_are_not_reported():
    facts = {"internal": {"best": "lr", "auc": float("nan"), "ci": [0.5, 0.7]},
             "external": [{"name": "b", "auc": None}],
             "operating_point": {"rule": "youden", "threshold": float("nan")}}
    items = guideline_items(facts)
    for guideline, number in ((CLAIM, "32"), (CLAIM, "33"), (TRIPOD, "15"), (CLAIM, "29")):
        assert _item(items, guideline, number)["status"] == AUTHORS
    assert not any("nan" in i["text"].lower() for i in items)


def test_an_empty_tuning_grid_is_reported_as_fixed_hyperparameters():
    text = _item(guideline_items({"tuning": {}}), TRIPOD, "12c")["text"]
    assert "no tuning grid" in text


def test_a_split_not_said_to_be_by_patient_leaves_the_disjoint_level_to_the_authors():
    facts = {"validation": {"cv": "5-fold stratified", "holdout": "20% random"}}
    assert _item(guideline_items(facts), CLAIM, "20")["status"] == AUTHORS
    assert _item(guideline_items(facts), CLAIM, "19")["status"] == FILLED


def test_filled_items_name_what_the_authors_still_add():
    text = _item(guideline_items(FACTS), TRIPOD, "5a")["text"]
    assert "Authors to add: rationale and representativeness" in text


def test_inputs_are_not_modified():
    facts = copy.deepcopy(FACTS)
    guideline_items(facts)
    assert facts == FACTS


def test_facts_that_are_not_a_dict_are_refused():
    with pytest.raises(TypeError, match="facts must be a dict.*list"):
        guideline_items([("sources", [])])


# --------------------------------------------------------------------------- markdown


def _rows(markdown):
    table = [line for line in markdown.splitlines() if line.startswith("| ")]
    return [line for line in table if not line.startswith("| ---")][1:]  # without the header


def _cells(row):
    """Split a table row on unescaped pipes, as a GFM renderer does."""
    return [c.strip() for c in re.split(r"(?<!\\)\|", row)[1:-1]]


def test_markdown_lists_every_item_once_in_order():
    items = guideline_items(FACTS)
    rows = _rows(guideline_markdown(items, "BUSI"))
    assert len(rows) == len(items)
    for row, item in zip(rows, items):
        cells = _cells(row)
        assert cells[:4] == [item["guideline"], item["item"], item["topic"], item["status"]]
        assert cells[5] == item["section"]


def test_markdown_escapes_pipes_and_html_in_cells():
    facts = {"sources": [{"name": "site|A <script>alert(1)</script>", "manifest": "m.csv", "n_rows": 9}]}
    markdown = guideline_markdown(guideline_items(facts), "Study | one\nsecond line")
    (row,) = [r for r in _rows(markdown) if "| 5a |" in r]
    cells = _cells(row)
    assert len(cells) == 6
    assert r"site\|A &lt;script&gt;alert(1)&lt;/script&gt;" in cells[4]
    assert "<script>" not in markdown
    assert markdown.splitlines()[0] == "# Study | one second line"


def test_markdown_preamble_names_both_guidelines_and_the_authors_part():
    items = guideline_items(FACTS)
    markdown = guideline_markdown(items, "BUSI")
    preamble = markdown.split("| Guideline")[0]
    for text in ("TRIPOD+AI", "BMJ 2024", "CLAIM 2024", "Radiology: Artificial Intelligence", AUTHORS):
        assert text in preamble
    n_tripod = sum(1 for i in items if i["guideline"] == TRIPOD)
    n_filled = sum(1 for i in items if i["guideline"] == TRIPOD and i["status"] == FILLED)
    assert f"{n_filled} of {n_tripod} TRIPOD+AI items" in preamble


def test_markdown_of_an_empty_run_fills_nothing():
    markdown = guideline_markdown(guideline_items({}), "empty")
    assert "filled 0 of" in markdown
    assert all(_cells(r)[3] == AUTHORS for r in _rows(markdown))


def test_unrecorded_values_inside_facts_are_left_out_rather_than_printed():
    """What a run may not know (None) never reads as 'None' in a filled item."""
    facts = {"sources": [{"name": None, "manifest": None, "n_rows": 12}],
             "eligibility": {"n_included": None, "excluded": []},
             "model": {"stack": None, "meta": None, "pca": None, "balancing": None,
                       "learners": ["lr"], "weights": {"resnet50": None, "vgg16": "imagenet"}},
             "tuning": None, "seed": None, "software": {"numpy": None, "pandas": "2.2"},
             "internal": {"best": "lr", "auc": np.float32(0.75), "ci": (np.float64(0.6), np.float64(0.9))}}
    items = guideline_items(facts)
    assert not any("None" in i["text"] for i in items)
    assert _item(items, TRIPOD, "6b")["status"] == AUTHORS          # n_included unknown
    assert _item(items, CLAIM, "27")["status"] == AUTHORS           # stacking unknown
    assert "no tuning grid" not in _item(items, TRIPOD, "12c")["text"]
    assert "vgg16: imagenet" in _item(items, CLAIM, "24")["text"]
    assert "0.750" in _item(items, CLAIM, "32")["text"] and "0.600" in _item(items, CLAIM, "32")["text"]
