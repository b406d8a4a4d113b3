"""mini-MIAS as downloaded: mdbNNN.pgm files and the truth table Info.txt in one folder.

Info.txt rows are `REFNUM BG CLASS [SEVERITY [X Y RADIUS]]`, one per finding (several rows for a
multi-finding film); lines that do not start with a reference number are its header and notes.
"""

from __future__ import annotations

import re

from pipeline.importers.common import ImportResult, Problems, case_insensitive, joined, require_dir, starter_study

TISSUES = {"F", "G", "D"}
CLASSES = {"CALC", "CIRC", "SPIC", "MISC", "ARCH", "ASYM", "NORM"}
_REF = re.compile(r"^mdb\d{3}$", re.IGNORECASE)

COMMENTS = """\
mini-MIAS mammograms (Suckling et al., 1994), imported by `run_pipeline.py import mini-mias`.
Three classes (normal / benign / malignant; a film is malignant if any finding is). Both films of
a woman (mdb001 + mdb002, ...) share a patient_id, so they always land in the same fold.
clinical holds background_tissue (breast density) only. The manifest also keeps abnormality_class,
severity, n_abnormalities, x, y, radius and info_note from Info.txt: they are NOT features because
they give the answer away (NORM class = normal; severity B/M = the label; a finding location
exists only for abnormal films). For abnormal vs normal use label: {map: {benign: abnormal,
malignant: abnormal}, positive: abnormal}; for malignant vs benign use label: {drop: [normal]}."""


def _parse_line(tokens, where, problems):
    """One finding of Info.txt as a dict, or None (and a problem) when the row is unreadable."""
    if len(tokens) < 3:
        problems.append(f"{where}: expected 'REFNUM BG CLASS [SEVERITY X Y RADIUS]', got {' '.join(tokens)!r}")
        return None
    ref, tissue, klass, rest = tokens[0].lower(), tokens[1].upper(), tokens[2].upper(), tokens[3:]
    bad = []
    if tissue not in TISSUES:
        bad.append(f"background tissue {tokens[1]!r} is not F, G or D")
    if klass not in CLASSES:
        bad.append(f"class {tokens[2]!r} is not one of {', '.join(sorted(CLASSES))}")
    note_at = next((i for i, t in enumerate(rest) if t.startswith("*")), len(rest))
    note, rest = " ".join(rest[note_at:]), rest[:note_at]
    severity = ""
    if klass != "NORM":
        severity = rest[0].upper() if rest else ""
        if severity not in ("B", "M"):
            bad.append(f"severity {severity or '(missing)'!r} is not B or M")
        rest = rest[1:]
    if rest and (len(rest) != 3 or not all(t.isdigit() for t in rest)):
        bad.append(f"expected X Y RADIUS as three whole numbers, got {' '.join(rest)!r}")
    if bad:
        problems.append(f"{where} ({ref}): " + "; ".join(bad))
        return None
    x, y, radius = rest if rest else ("", "", "")
    return {"ref": ref, "tissue": tissue, "class": klass, "severity": severity,
            "x": x, "y": y, "radius": radius, "note": note}


def read_info(path, problems):
    """Findings grouped by reference number, in file order."""
    findings = {}
    for number, line in enumerate(path.read_text(encoding="latin-1").splitlines(), start=1):
        tokens = line.split()
        if tokens and _REF.match(tokens[0]):
            finding = _parse_line(tokens, f"{path.name} line {number}", problems)
            if finding:
                findings.setdefault(finding["ref"], []).append((number, finding))
    return findings


def _row(ref, found, image, problems):
    lines = ", ".join(str(n) for n, _ in found)
    items = [f for _, f in found]
    tissues = sorted({f["tissue"] for f in items})
    if len(tissues) > 1:
        problems.append(f"Info.txt lines {lines} ({ref}): background tissue differs between rows ({tissues})")
    abnormal = [f for f in items if f["class"] != "NORM"]
    if abnormal and len(abnormal) != len(items):
        problems.append(f"Info.txt lines {lines} ({ref}): NORM together with findings on one film")
    number = int(ref[3:])
    label = "normal" if not abnormal else ("malignant" if any(f["severity"] == "M" for f in abnormal)
                                           else "benign")
    return {"case_id": ref, "patient_id": f"mias_{(number + 1) // 2:03d}", "label": label,
            "mammography_path": image, "side": "left" if number % 2 == 0 else "right",
            "background_tissue": tissues[0],
            "abnormality_class": joined(f["class"] for f in items),
            "severity": joined(f["severity"] for f in abnormal),
            "n_abnormalities": str(len(abnormal)),
            "x": joined(f["x"] for f in abnormal if f["x"]),
            "y": joined(f["y"] for f in abnormal if f["y"]),
            "radius": joined(f["radius"] for f in abnormal if f["radius"]),
            "info_note": joined(sorted({f["note"] for f in items if f["note"]}))}


def import_mini_mias(source, options):
    """One row per film: label, patient pairs, density, and Info.txt's finding columns."""
    root = require_dir(source, "mini-mias")
    problems = Problems()
    info = case_insensitive(root, "Info.txt")
    if info is None:
        problems.append(f"{root}: Info.txt (the truth table) not found; it comes with the download "
                        "(all-mias.tar.gz) beside the .pgm files")
    findings = read_info(info, problems) if info else {}
    images = {p.stem.lower(): p for p in sorted(root.iterdir())
              if p.suffix.lower() == ".pgm" and _REF.match(p.stem)}
    if not images:
        problems.append(f"{root}: no mdbNNN.pgm image found")
    result = ImportResult("mini-mias", root, [], ["mammography_path"],
                          starter_study("mini-MIAS mammography", ["mammography"],
                                        clinical={"background_tissue": "categorical"}), COMMENTS)
    rows = []
    for ref, found in sorted(findings.items()):
        if ref not in images:
            problems.append(f"Info.txt line {found[0][0]} ({ref}): image {ref}.pgm not found in {root}")
            continue
        rows.append(_row(ref, found, images[ref], problems))
    for ref in sorted(set(images) - set(findings)):
        if info is not None:
            result.excluded.append((str(images[ref]), "no row in Info.txt, so no label"))
    others = [p for p in sorted(root.iterdir()) if p.is_file() and p.suffix.lower() == ".pgm"
              and p.stem.lower() not in images]
    result.excluded += [(str(p), "not named mdbNNN.pgm") for p in others]
    problems.raise_if_any(f"mini-MIAS source {root}", "Fix Info.txt or the image files and run the import again.")
    result.rows = rows
    result.info.append(f"findings: {sum(int(r['n_abnormalities']) for r in rows)} in Info.txt; "
                       f"background tissue: {', '.join(sorted({r['background_tissue'] for r in rows}))}")
    return result
