"""BUSI as downloaded: Dataset_BUSI_with_GT/<class>/'<class> (N).png' with '_mask' / '_mask_K' files."""

from __future__ import annotations

import re

from pipeline.importers.common import (
    ImportResult,
    Problems,
    descend,
    add_duplicate_groups,
    require_dir,
    require_images,
    starter_study,
)

CLASSES = ("benign", "malignant", "normal")
_NAME = re.compile(r"^(?P<word>[a-z]+) \((?P<n>\d+)\)(?P<mask>_mask(?:_(?P<k>\d+))?)?\.png$", re.IGNORECASE)

COMMENTS = """\
BUSI breast ultrasound (Al-Dhabyani et al., Data in Brief 28 (2020) 104863), imported by
`run_pipeline.py import busi`. Three classes; BUSI has no patient ids, so patient_id = image id.
mask_column is deliberately OFF: BUSI's normal images have all-zero masks, so any mask-derived
feature (the handcrafted block's shape descriptors, or an ROI crop that falls back to the whole
image only for normals) gives the label away. To crop to the lesion, drop the normals
(label: {drop: [normal]}) and set, under modalities.ultrasound:
  mask_column: mask_path
  preprocessing: {kind: ultrasound, roi_crop: true, roi_margin: 0.15}
dup_group joins pixel-identical images and near-duplicates (64 x 64 thumbnails correlating >= 0.95:
re-crops, re-scales, consecutive frames; some cross classes), kept within one fold by
fuse.group_column; every pair is listed in duplicates.csv. (--near-duplicates sets the threshold.)"""


def _scan(folder, label, images, masks, result, problems):
    for path in sorted(folder.iterdir()):
        match = _NAME.match(path.name) if path.is_file() else None
        if not match:
            result.excluded.append((str(path), "not a BUSI image or mask name ('<class> (N).png', "
                                               "'<class> (N)_mask.png')"))
            continue
        case_id = f"{match['word'].lower()}_{int(match['n']):03d}"
        if match["mask"]:
            masks.setdefault(case_id, []).append((int(match["k"] or 0), path))
        elif case_id in images:
            problems.append(f"{path}: a second image numbered {match['n']} ({images[case_id]['source_file']})")
        else:
            images[case_id] = {"case_id": case_id, "patient_id": case_id, "label": label,
                               "ultrasound_path": path, "source_file": f"{folder.name}/{path.name}"}


def import_busi(source, options):
    """One row per image; masks in mask_path (+ extra_mask_paths); exact duplicates in dup_group."""
    root = descend(require_dir(source, "busi"), "Dataset_BUSI_with_GT")
    result = ImportResult("busi", root, [], ["ultrasound_path", "mask_path", "extra_mask_paths"],
                          starter_study("BUSI ultrasound", ["ultrasound"], fuse={"group_column": "dup_group"}),
                          COMMENTS)
    problems = Problems()
    folders = {p.name.lower(): p for p in sorted(root.iterdir()) if p.is_dir()}
    if not any(c in folders for c in CLASSES):
        problems.append(f"{root}: no class folder ({', '.join(c + '/' for c in CLASSES)}) found; "
                        f"folders here: {', '.join(sorted(folders)) or 'none'}")
    images, masks = {}, {}
    for name, folder in folders.items():
        if name in CLASSES:
            _scan(folder, name, images, masks, result, problems)
        else:
            result.excluded.append((str(folder), "not a BUSI class folder"))
    for case_id, found in sorted(masks.items()):
        found.sort()
        if case_id not in images:
            problems += [f"{p}: mask without an image (expected {p.name.split('_mask')[0]}.png beside it)"
                         for _, p in found]
            continue
        images[case_id]["mask_path"] = found[0][1]
        images[case_id]["extra_mask_paths"] = [p for _, p in found[1:]]
    rows = [images[k] for k in sorted(images)]
    for row in rows:
        row.setdefault("mask_path", "")
        row.setdefault("extra_mask_paths", [])
    result.rows = rows
    require_images(result, problems, "'<class> (N).png' files in benign/, malignant/, normal/")
    add_duplicate_groups(result, "ultrasound_path", problems, options)
    result.info.append(f"masks: {sum(1 for r in rows if r['mask_path'])} image(s) with a mask, "
                       f"{sum(1 for r in rows if r['extra_mask_paths'])} with more than one")
    problems.raise_if_any(f"BUSI source {root}", "Fix or remove these files and run the import again.")
    result.rows = rows
    return result

