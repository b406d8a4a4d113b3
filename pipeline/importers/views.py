"""Rows of one image each regrouped into cases with a path column per view.

Two uses: ``--level breast`` of the Mini-DDSM and CBIS-DDSM importers (the CC and MLO views of one
breast become one case, as MMDCNet's Mini-DDSM protocol and MPM-MU work), and the ``long`` importer
(any manifest with one row per image: case, modality, view, laterality, path). Patient grouping is
unchanged: both breasts of a woman share a patient.
"""

from __future__ import annotations

SEVERITY = ("normal", "benign", "malignant")     # a case is as bad as its worst image's finding


def _label(labels):
    known = [lab for lab in labels if lab in SEVERITY]
    return max(known, key=SEVERITY.index) if len(known) == len(labels) else labels[0]


def _constant_columns(cases, skip):
    """Columns whose value is the same on every image of every case (age, density...): kept."""
    columns = [c for c in next(iter(cases.values()))[0] if c not in skip]
    return [c for c in columns
            if all(len({str(r.get(c, "")) for r in rows}) == 1 for rows in cases.values())]


def pivot_views(result, case_of, view_of, modality_of, skip=()):
    """Regroup ``result.rows`` in place: one row per case, ``<modality>_<view>_path`` (and
    ``mask_<modality>_<view>_path`` where masks are given) per view; ``modalities`` in the study get
    their ``views``. The label is malignant if any image's is (then benign, then normal); a view seen
    twice for one case keeps its first image and lists the others as excluded."""
    cases, views = {}, {}
    for row in result.rows:
        modality, view = modality_of(row), view_of(row)
        views.setdefault(modality, [])
        if view not in views[modality]:
            views[modality].append(view)
        cases.setdefault(case_of(row), []).append((modality, view, row))
    plain = {c: [r for _, _, r in items] for c, items in cases.items()}
    keep = _constant_columns(plain, {"case_id", "label", "mammography_path", "mask_path", "extra_mask_paths",
                                     "path", "view", "modality", *skip})
    out, masks = [], set()
    for case, items in sorted(cases.items()):
        first = items[0][2]
        row = {"case_id": case, **{k: first[k] for k in keep}, "label": _label([r["label"] for _, _, r in items]),
               "image_ids": ";".join(str(r["case_id"]) for _, _, r in items)}
        for modality, mviews in views.items():
            for view in mviews:
                mine = [r for m, v, r in items if (m, v) == (modality, view)]
                row[f"{modality}_{view}_path"] = mine[0]["path"] if mine else ""
                mask = mine[0].get("mask_path", "") if mine else ""
                row[f"mask_{modality}_{view}_path"] = mask
                if mask:
                    masks.add((modality, view))
                result.excluded += [(str(r["path"]), f"a second {modality} {view} image of case {case} "
                                     f"(the first, {mine[0]['case_id']}, is used)") for r in mine[1:]]
        out.append(row)
    for row in out:
        for modality, mviews in views.items():
            for view in mviews:
                if (modality, view) not in masks:
                    del row[f"mask_{modality}_{view}_path"]
    result.rows = out
    result.path_columns = [c for m, mviews in views.items() for v in mviews
                           for c in (f"{m}_{v}_path", *([f"mask_{m}_{v}_path"] if (m, v) in masks else []))]
    for modality, mviews in views.items():
        old = result.study["modalities"].get(modality, {})
        result.study["modalities"][modality] = {
            "views": {v: {"path_column": f"{modality}_{v}_path"} for v in mviews}, "pool": "mean",
            "preprocessing": old.get("preprocessing", {})}
    complete = sum(1 for r in out if all(r[c] for c in result.path_columns if not c.startswith("mask_")))
    n_images = sum(len(items) for items in cases.values())
    result.info.append(f"{len(out)} case(s) from {n_images} image(s); views: " + "; ".join(f"{m} {', '.join(v)}" for m, v in views.items())
                       + f"; {complete} case(s) with every view")
    return result


def breast_level(result):
    """Mammography image rows (with view and side) as one case per breast: ``<patient>_<SIDE>``."""
    for row in result.rows:
        row["path"] = row.pop("mammography_path")
    return pivot_views(result, lambda r: f"{r['patient_id']}_{str(r['side']).upper()}",
                       lambda r: str(r["view"]).lower(), lambda r: "mammography", skip=("status",))
