"""The whole page as plain data: every registered section built from one ``ReportInputs``, in order."""
from __future__ import annotations

from datetime import datetime, timezone

from . import sections, stats
from .inputs import Context, case_labeller


def make_context(inputs):
    """What the sections share: how cases are named (the design's, then the excluded ones) and the
    main learners."""
    ids = list(inputs.frame.index) + [e["case_id"] for e in inputs.design_meta.get("excluded", [])]
    return Context(label=case_labeller(ids, inputs.settings.hide_case_ids),
                   learners=sections.main_learners(inputs.metrics))


def build_page(inputs):
    """(page, tables): the page for ``html.render_report`` ({"title", "generated", "banner",
    "sections": [{"id", "title", "data"}]}) and every table as a frame keyed by export name."""
    context = make_context(inputs)
    built, tables = [], {}
    for section in sections.SECTIONS:
        data, more = section.build(inputs, context)
        clash = set(more) & set(tables)
        if clash:
            raise ValueError(f"report section {section.id!r} exports tables another section already did: "
                             f"{sorted(clash)}")
        tables.update(more)
        built.append({"id": section.id, "title": section.title, "data": data})
    page = {"title": inputs.title, "generated": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "banner": stats.weights_fallback_banner(inputs.design_meta.get("blocks", {})), "sections": built}
    return page, tables
