"""Every image a study's manifest names, with its lesion (a mask file or an ROI drawn from circle/box
cells) and view, and the content hashes that key the embeddings: what extract embeds and records,
and what explain re-embeds.
"""

from __future__ import annotations

from features.hashing import hash_json


def image_rows(manifest, modality, keep=None):
    """(case_id, image path, lesion or None, line number, view or None) for each image of a modality.

    The lesion is a mask file's path, or the text of an ROI drawn from the row's circle/box cells."""
    from pipeline.manifest.roi import roi_columns, row_roi  # noqa: PLC0415

    frame = manifest.frame
    out = []
    for src in modality.sources:
        cells = frame[[src.path_column, *([src.mask_column] if src.mask_column else []), *roi_columns(src.roi)]]
        for i, (case_id, row) in enumerate(zip(frame["case_id"], cells.to_dict("records"))):
            cell = row[src.path_column]
            if cell == "" or (keep is not None and not keep[i]):
                continue
            lesion = None
            if src.mask_column and row[src.mask_column]:
                lesion = manifest.resolve(row[src.mask_column])
            elif src.roi:
                shape = row_roi(src.roi, row)
                lesion = shape.text() if shape is not None else None
            out.append((case_id, manifest.resolve(cell), lesion, i + 2, src.view))
    return out


def image_shas(session, rows):
    """{path: sha256 or None when the file is gone} for the images and masks of ``rows`` (an ROI's
    text stands for itself: its hash is that of the text)."""
    from features.roi import is_roi_text  # noqa: PLC0415

    paths = [p for r in rows for p in (r[1], r[2]) if p is not None and not is_roi_text(p)]
    present = [p for p in paths if p.is_file()]
    found = session.hashes.many(present)
    out = {str(p): found.get(str(p.resolve())) for p in paths}
    out.update({r[2]: hash_json(r[2]) for r in rows if is_roi_text(r[2])})
    return out


def image_index(session):
    """Per modality, [case_id, line, image, image sha, lesion sha, lesion, view] of every image, where
    the lesion is a mask path or an ROI text and view is None for a modality without views."""
    out, keep = {}, labelled_rows(session.study, session.manifest.frame)
    for modality in session.study.modalities.values():
        rows = image_rows(session.manifest, modality, keep)
        shas = image_shas(session, rows)
        out[modality.name] = [[case, line, str(path), shas[str(path)], shas[str(mask)] if mask else None,
                               str(mask) if mask else None, view] for case, path, mask, line, view in rows]
    return out


def labelled_rows(study, frame):
    """Rows whose label ``label.drop`` leaves out are not embedded (fuse would never use them: BUSI's
    normals with their empty masks, in a lesion study); None when the manifest has no labels."""
    if study.label_column not in frame.columns:
        return None
    from pipeline.manifest.labels import effective_labels  # noqa: PLC0415

    return (effective_labels(study, frame[study.label_column]) != "").to_numpy()


def row_key(row):
    """What identifies an image row across runs: its case and view."""
    return (row[0], row[6] if len(row) > 6 else None)
