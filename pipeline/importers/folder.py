"""Any class-per-folder tree: SOURCE/<class>/**/<image>, one case per image, one modality."""

from __future__ import annotations

from pipeline.importers.common import (IMAGE_SUFFIXES, ImportResult, Problems, add_duplicate_groups, is_image,
                                       require_dir, require_images, starter_study)

COMMENTS = """\
Imported by `run_pipeline.py import folder`: one case per image, the label is the class folder.
There are no patient ids, so patient_id = case id: if a patient has several images, add a real
patient_id column to manifest.csv (or a grouping column and fuse.group_column), or the
cross-validation will put the same woman on both sides of a split. Exact and near-duplicate
images are grouped in dup_group (kept within one fold; pairs in duplicates.csv). No clinical columns."""


def import_folder(source, options):
    """Label = first folder below SOURCE; case id = class + path inside it (unique by construction)."""
    root = require_dir(source, "folder")
    modality = options.modality
    column = f"{modality}_path"
    result = ImportResult("folder", root, [], [column],
                          starter_study(f"{root.name} ({modality})", [modality], positive=None), COMMENTS)
    problems = Problems()
    classes = [p for p in sorted(root.iterdir()) if p.is_dir() and not p.name.startswith(".")]
    if not classes:
        problems.append(f"{root}: no class folder found (expected SOURCE/<class>/<image>)")
    result.excluded += [(str(p), "a file directly in SOURCE has no class folder")
                        for p in sorted(root.iterdir()) if p.is_file()]
    rows = []
    for folder in classes:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            if not is_image(path):
                result.excluded.append((str(path), f"not an image ({', '.join(IMAGE_SUFFIXES)})"))
                continue
            rel = path.relative_to(folder).with_suffix("")
            case_id = "_".join((folder.name, *rel.parts))
            rows.append({"case_id": case_id, "patient_id": case_id, "label": folder.name, column: path})
        if not any(r["label"] == folder.name for r in rows):
            result.info.append(f"class folder {folder.name}/ holds no image")
    result.rows = rows
    require_images(result, problems, f"SOURCE/<class>/<image>, images being {', '.join(IMAGE_SUFFIXES)}")
    add_duplicate_groups(result, column, problems, options)
    problems.raise_if_any(f"Folder source {root}", "Arrange the images as SOURCE/<class>/<image>.")
    if "malignant" in {r["label"] for r in rows}:
        result.study["label"]["positive"] = "malignant"
    return result
