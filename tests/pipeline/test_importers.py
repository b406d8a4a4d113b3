"""Importers: tiny official layouts built from real images in tmp dirs, to manifest + study file."""

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import yaml

from pipeline.config import load_study
from pipeline.errors import ConfigError, ManifestError
from pipeline.importers import IMPORTERS, Options, run_import
from pipeline.manifest import load_manifest
from study_factory import make_dicom

REPO = Path(__file__).resolve().parents[2]


def _small(shared, rel, size=64):
    img = cv2.imread(str(shared / rel), cv2.IMREAD_GRAYSCALE)
    assert img is not None, rel
    return cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)


def _write(path, img):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), img), path
    return path


def _imported(source, out, fmt, **options):
    lines = run_import(fmt, source, out, Options(**options))
    frame = pd.read_csv(out / "manifest.csv", dtype=str, keep_default_na=False)
    study = load_study(out / "study.yaml")
    return lines, frame.set_index("case_id", drop=False), study


def _problems(fmt, source, out):
    """The text of the user error a bad source raises; nothing may be written."""
    with pytest.raises(ManifestError) as err:
        run_import(fmt, source, out)
    assert not (out / "manifest.csv").exists()
    return str(err.value)


# --- BUSI ------------------------------------------------------------------------------------

def _busi(root, shared):
    """Official names: '<class> (N).png' + '_mask.png' (+ '_mask_1.png'); one exact duplicate, and
    benign 1 / benign 318, a real near-duplicate pair of BUSI (thumbnail correlation 0.99)."""
    base = root / "Dataset_BUSI_with_GT"
    picks = {"benign": [1, 2, 3, 318], "malignant": [1, 2], "normal": [1, 2]}
    for label, numbers in picks.items():
        for n in numbers:
            img = _small(shared, f"busi/images/{label}/{label}_{n:03d}.png")
            _write(base / label / f"{label} ({n}).png", cv2.cvtColor(img, cv2.COLOR_GRAY2BGR))
            mask = _small(shared, f"busi/masks/{label}/{label}_{n:03d}_mask.png")
            _write(base / label / f"{label} ({n})_mask.png", mask)
    _write(base / "benign" / "benign (1)_mask_1.png", np.zeros((64, 64), np.uint8))
    _write(base / "malignant" / "malignant (9).png", _small(shared, "busi/images/benign/benign_003.png"))
    (base / "benign" / "Thumbs.db").write_bytes(b"junk")
    return root


def test_busi_rows_masks_and_exact_and_near_duplicates(tmp_path, shared_data):
    lines, frame, study = _imported(_busi(tmp_path / "src", shared_data), tmp_path / "out", "busi")
    assert list(frame.index) == ["benign_001", "benign_002", "benign_003", "benign_318", "malignant_001",
                                 "malignant_002", "malignant_009", "normal_001", "normal_002"]
    assert frame.loc["normal_002", "label"] == "normal"
    assert (frame["patient_id"] == frame["case_id"]).all()
    assert frame.loc["benign_001", "mask_path"].endswith("benign (1)_mask.png")
    assert frame.loc["benign_001", "extra_mask_paths"].endswith("benign (1)_mask_1.png")
    groups = frame.loc[frame["dup_group"] != "", "dup_group"]
    assert groups.to_dict() == {"benign_001": "dup001", "benign_318": "dup001",
                                "benign_003": "dup002", "malignant_009": "dup002"}
    pairs = pd.read_csv(tmp_path / "out" / "duplicates.csv")
    assert sorted(zip(pairs.case_id_a, pairs.case_id_b, pairs.kind)) == [
        ("benign_001", "benign_318", "near"), ("benign_003", "malignant_009", "exact")]
    assert pairs.loc[pairs.kind == "near", "thumb_corr"].item() >= 0.95
    assert study.fuse.group_column == "dup_group"
    assert study.modalities["ultrasound"].mask_column is None
    assert "all-zero masks" in (tmp_path / "out" / "study.yaml").read_text()
    assert len(load_manifest(study).frame) == 9
    assert any("Thumbs.db" in line for line in lines) and "  excluded: 1" in "\n".join(lines)


def test_busi_lists_every_problem(tmp_path, shared_data):
    base = _busi(tmp_path / "src", shared_data) / "Dataset_BUSI_with_GT"
    _write(base / "benign" / "benign (7)_mask.png", np.zeros((8, 8), np.uint8))
    (base / "normal" / "normal (5).png").write_bytes(b"not a png")
    text = _problems("busi", tmp_path / "src", tmp_path / "out")
    assert "2 problem(s)" in text
    assert "benign (7)_mask.png: mask without an image" in text
    assert "normal (5).png" in text


# --- mini-MIAS --------------------------------------------------------------------------------

INFO = """\
MIAS MiniMammographic Database (header: credits and notes, skipped)
1) The list is arranged in pairs of films...

mdb001 G CIRC B 535 425 197
mdb002 G CIRC B 522 280 69
mdb003 D NORM
mdb004 D NORM
mdb005 F CIRC B 477 133 30
mdb005 F CIRC B 500 168 26
mdb006 F NORM
mdb143 F NORM
mdb144 F MISC B 233 994 29
mdb144 F MISC M 313 540 27
"""


def _mias(root, shared, info=INFO):
    for ref in ("mdb001", "mdb002", "mdb003", "mdb004", "mdb005", "mdb006", "mdb143", "mdb144"):
        _write(root / f"{ref}.pgm", _small(shared, f"mini_mias/images/{ref}.png"))
    (root / "Info.txt").write_text(info)
    return root


def test_mini_mias_labels_patients_and_leak_columns(tmp_path, shared_data):
    _, frame, study = _imported(_mias(tmp_path / "src", shared_data), tmp_path / "out", "mini-mias")
    assert frame["label"].to_dict() == {"mdb001": "benign", "mdb002": "benign", "mdb003": "normal",
                                        "mdb004": "normal", "mdb005": "benign", "mdb006": "normal",
                                        "mdb143": "normal", "mdb144": "malignant"}
    assert frame.loc["mdb001", "patient_id"] == frame.loc["mdb002", "patient_id"] == "mias_001"
    assert frame.loc["mdb143", "patient_id"] == frame.loc["mdb144", "patient_id"] == "mias_072"
    assert frame.loc["mdb002", "side"] == "left" and frame.loc["mdb001", "side"] == "right"
    assert frame.loc["mdb005", "x"] == "477;500" and frame.loc["mdb144", "severity"] == "B;M"
    assert study.clinical == {"background_tissue": "categorical"}
    for leak in ("abnormality_class", "severity", "x", "y", "radius"):
        assert leak in frame.columns and leak not in study.clinical
    assert "give the answer away" in (tmp_path / "out" / "study.yaml").read_text()
    assert len(load_manifest(study).frame) == 8


def test_mini_mias_lists_every_problem_with_its_line(tmp_path, shared_data):
    bad = INFO + "mdb007 Q XYZ\nmdb008 F CIRC\nmdb009 F NORM\n"
    _mias(tmp_path / "src", shared_data, info=bad)
    text = _problems("mini-mias", tmp_path / "src", tmp_path / "out")
    assert "Info.txt line 14 (mdb007): background tissue 'Q' is not F, G or D; class 'XYZ'" in text
    assert "Info.txt line 15 (mdb008): severity '(missing)' is not B or M" in text
    assert "Info.txt line 16 (mdb009): image mdb009.pgm not found" in text


def test_mini_mias_without_info_txt_says_so(tmp_path):
    (tmp_path / "src").mkdir()
    text = _problems("mini-mias", tmp_path / "src", tmp_path / "out")
    assert "Info.txt (the truth table) not found" in text and "no mdbNNN.pgm image found" in text


# --- Mini-DDSM --------------------------------------------------------------------------------

def _ddsm(root, shared, table="xlsx", extra_rows=()):
    """Two benign women (4 views, 2 outlines) and one Cancer case, with the spreadsheet."""
    tree = root / "MINI-DDSM-Complete-JPEG-8"
    rows = []
    cases = [("Benign", "C_0029", 66, 3), ("Benign", "C_0033", 60, 3), ("Cancer", "C_0217", 56, 2)]
    for status, case, age, density in cases:
        for side in ("LEFT", "RIGHT"):
            for view in ("CC", "MLO"):
                name = f"{case}_1.{side}_{view}"
                folder = f"{status}/{case[2:]}"
                _write(tree / folder / f"{name}.jpg", _small(shared, f"mini_ddsm_subset/images/{name}.png"))
                contour = "-"
                mask = shared / "mini_ddsm_subset" / "masks" / f"{name}_Mask.png"
                if mask.is_file():
                    _write(tree / folder / f"{name}_Mask.jpg", _small(shared, f"mini_ddsm_subset/masks/{name}_Mask.png"))
                    contour = f"{status}\\{case[2:]}\\{name}_Mask.jpg"
                rows.append({"fullPath": f"{status}\\{case[2:]}\\{name}.jpg", "fileName": f"{name}.jpg",
                             "View": view, "Side": side, "Status": status, "Tumour_Contour": contour,
                             "Tumour_Contour2": "-", "Age": age, "Density": density})
    frame = pd.DataFrame(rows + list(extra_rows))
    if table == "xlsx":
        frame.to_excel(tree / "DataWMask.xlsx", index=False, engine="openpyxl")
    else:
        frame.to_csv(tree / "DataWMask.csv", index=False)
    return root


@pytest.mark.parametrize("table", ["xlsx", "csv"])
def test_mini_ddsm_groups_views_by_case_with_age_and_density(tmp_path, shared_data, table):
    _, frame, study = _imported(_ddsm(tmp_path / "src", shared_data, table), tmp_path / "out", "mini-ddsm")
    assert len(frame) == 12
    assert frame.groupby("patient_id").size().to_dict() == {"C_0029": 4, "C_0033": 4, "C_0217": 4}
    assert set(frame.loc[frame["patient_id"] == "C_0217", "label"]) == {"malignant"}
    assert frame.loc["C_0029_1.LEFT_CC", "age"] == "66" and frame.loc["C_0029_1.LEFT_CC", "view"] == "CC"
    assert frame.loc["C_0029_1.LEFT_CC", "mask_path"].endswith("C_0029_1.LEFT_CC_Mask.jpg")
    assert frame.loc["C_0029_1.RIGHT_CC", "mask_path"] == ""
    assert study.clinical == {"age": "numeric", "density": "ordinal"}
    assert study.modalities["mammography"].mask_column is None
    loaded = load_manifest(study).frame
    assert loaded["age"].dtype == float


def test_mini_ddsm_lists_every_problem_with_its_row(tmp_path, shared_data):
    ghost = {"fullPath": "Benign\\9999\\C_9999_1.LEFT_CC.jpg", "fileName": "C_9999_1.LEFT_CC.jpg", "View": "CC",
             "Side": "LEFT", "Status": "Benign", "Tumour_Contour": "-", "Tumour_Contour2": "-", "Age": "old",
             "Density": "2"}
    root = _ddsm(tmp_path / "src", shared_data, extra_rows=[ghost])
    _write(root / "MINI-DDSM-Complete-JPEG-8/Normal/0400/A_0400_1.LEFT_CC_Mask.jpg", np.zeros((8, 8), np.uint8))
    text = _problems("mini-ddsm", root, tmp_path / "out")
    assert "DataWMask.xlsx row 14: column 'Age': 'old' is not a number" in text
    assert "DataWMask.xlsx row 14: column 'fullPath': image 'Benign\\\\9999\\\\C_9999_1.LEFT_CC.jpg' not found" in text
    assert "A_0400_1.LEFT_CC_Mask.jpg: mask without an image" in text
    assert "3 problem(s)" in text


# --- CBIS-DDSM --------------------------------------------------------------------------------

CBIS_COMMON = ["patient_id", "left or right breast", "image view", "abnormality id", "abnormality type",
               "assessment", "pathology", "subtlety", "image file path", "cropped image file path",
               "ROI mask file path"]


def _cbis(root, shared, dicom=True):
    """Mass (breast_density) and calc ('breast density') CSVs; P_00001 LEFT CC has both."""
    img = _small(shared, "mini_mias/images/mdb001.png").astype(np.uint16) * 16  # 12-bit
    def image(folder):
        if dicom:
            rel = f"{folder}/1.3.6.1.4.1.9590/1.3.6.1.4.1.9590.100/000000.dcm"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            make_dicom(root / rel, img, photometric="MONOCHROME2", window=None)
        else:
            rel = f"{folder}/1.3.6.1.4.1.9590/1.3.6.1.4.1.9590.100/000000.dcm"  # as the CSV says
            _write(root / "pngs" / f"{folder}.png", (img // 16).astype(np.uint8))
        return rel + "\n"
    mass = [["P_00001", 3, "LEFT", "CC", 1, "mass", 4, "BENIGN", 4, image("Mass-Training_P_00001_LEFT_CC"), "",
             image("Mass-Training_P_00001_LEFT_CC_1")],
            ["P_00004", 2, "RIGHT", "MLO", 1, "mass", 5, "MALIGNANT", 5, image("Mass-Training_P_00004_RIGHT_MLO"),
             "", ""]]
    calc = [["P_00001", 3, "LEFT", "CC", 1, "calcification", 5, "MALIGNANT", 3,
             image("Calc-Test_P_00001_LEFT_CC"), "", ""],
            ["P_00005", 1, "RIGHT", "CC", 1, "calcification", 2, "BENIGN_WITHOUT_CALLBACK", 2,
             image("Calc-Test_P_00005_RIGHT_CC"), "", ""]]
    cols = CBIS_COMMON.copy()
    cols.insert(1, "breast_density")
    pd.DataFrame(mass, columns=cols).to_csv(root / "mass_case_description_train_set.csv", index=False)
    cols[1] = "breast density"
    pd.DataFrame(calc, columns=cols).to_csv(root / "calc_case_description_test_set.csv", index=False)
    return root


@pytest.mark.parametrize("dicom", [True, False], ids=["dicom", "png-tree"])
def test_cbis_one_case_per_image_malignant_if_any_with_split(tmp_path, shared_data, dicom):
    src = tmp_path / "src"
    src.mkdir()
    _, frame, study = _imported(_cbis(src, shared_data, dicom), tmp_path / "out", "cbis-ddsm")
    assert list(frame.index) == ["P_00001_LEFT_CC", "P_00004_RIGHT_MLO", "P_00005_RIGHT_CC"]
    assert frame["label"].tolist() == ["malignant", "malignant", "benign"]
    assert frame.loc["P_00001_LEFT_CC", "cbis_split"] == "test;train"
    assert frame.loc["P_00001_LEFT_CC", "abnormality_type"] == "calcification;mass"
    assert frame.loc["P_00005_RIGHT_CC", "density"] == "1"
    suffix = ".dcm" if dicom else ".png"
    assert all(p.endswith(suffix) for p in frame["mammography_path"])
    assert study.clinical == {"density": "ordinal"}
    for leak in ("assessment", "pathology", "subtlety"):
        assert leak in frame.columns and leak not in study.clinical
    assert "  # assessment: categorical" in (tmp_path / "out" / "study.yaml").read_text()   # '5;4': joined
    assert len(load_manifest(study).frame) == 3


def test_cbis_lists_missing_images_with_their_line(tmp_path, shared_data):
    src = tmp_path / "src"
    src.mkdir()
    _cbis(src, shared_data)
    csv = src / "mass_case_description_train_set.csv"
    frame = pd.read_csv(csv, dtype=str, keep_default_na=False)
    frame.loc[1, "image file path"] = "Mass-Training_P_09999_LEFT_CC/1/2/000000.dcm"
    frame.loc[0, "pathology"] = "UNKNOWN"
    frame.to_csv(csv, index=False)
    text = _problems("cbis-ddsm", src, tmp_path / "out")
    assert "mass_case_description_train_set.csv line 2: column 'pathology': 'UNKNOWN'" in text
    assert "mass_case_description_train_set.csv line 3: column 'image file path': " \
           "'Mass-Training_P_09999_LEFT_CC/1/2/000000.dcm' not found" in text


# --- folder and csv ---------------------------------------------------------------------------

def test_folder_one_case_per_image_and_non_images_listed(tmp_path, shared_data):
    src = tmp_path / "src"
    _write(src / "benign" / "a.png", _small(shared_data, "busi/images/benign/benign_001.png"))
    _write(src / "benign" / "sub" / "b.jpg", _small(shared_data, "busi/images/benign/benign_002.png"))
    _write(src / "malignant" / "c.tif", _small(shared_data, "busi/images/malignant/malignant_001.png"))
    _write(src / "malignant" / "d.png", _small(shared_data, "busi/images/benign/benign_318.png"))  # ~ benign_001
    (src / "malignant" / "notes.txt").write_text("x")
    lines, frame, study = _imported(src, tmp_path / "out", "folder", modality="mammography")
    assert frame["label"].to_dict() == {"benign_a": "benign", "benign_sub_b": "benign", "malignant_c": "malignant",
                                        "malignant_d": "malignant"}
    assert "mammography_path" in frame.columns and study.modalities["mammography"].preprocess.otsu_crop
    assert "notes.txt: not an image" in "\n".join(lines)
    assert frame.loc[["benign_a", "malignant_d"], "dup_group"].tolist() == ["dup001", "dup001"]
    assert frame.loc[["benign_sub_b", "malignant_c"], "dup_group"].tolist() == ["", ""]
    assert study.fuse.group_column == "dup_group"
    assert len(load_manifest(study).frame) == 4


def test_csv_joins_modalities_and_keeps_leaky_columns_out(tmp_path, shared_data):
    src = tmp_path / "src"
    for i in range(4):
        _write(src / "mg" / f"p{i}.png", _small(shared_data, f"mini_mias/images/mdb00{i + 1}.png"))
    for i in (0, 2, 3):
        _write(src / "us" / f"img{i}.png", _small(shared_data, f"busi/images/benign/benign_00{i + 1}.png"))
    pd.DataFrame({"case_id": ["p0", "p2", "p3", "p9"], "path": ["img0.png", "img2.png", "img3.png", "x.png"]}
                 ).to_csv(src / "us" / "index.csv", index=False)
    pd.DataFrame({"case_id": ["p0", "p1", "p2", "p3"], "label": ["benign", "malignant", "benign", "malignant"],
                  "age": ["50", "61", "", "45"], "family_history": ["yes", "no", "no", "yes"],
                  "pathology": ["B", "M", "B", "M"]}).to_csv(src / "clinical.csv", index=False)
    lines, frame, study = _imported(src, tmp_path / "out", "csv", table=Path("clinical.csv"),
                                    images=("mammography=mg/{id}.png", "ultrasound=us/index.csv"))
    assert frame.loc["p1", "ultrasound_path"] == "" and frame.loc["p1", "mammography_path"].endswith("p1.png")
    assert frame.loc["p2", "ultrasound_path"].endswith("img2.png")
    assert study.clinical == {"age": "numeric", "family_history": "categorical"}
    assert "pathology" in frame.columns and "pathology" in (tmp_path / "out" / "study.yaml").read_text()
    assert "case 'p9' is not in the table" in "\n".join(lines)
    assert len(load_manifest(study).frame) == 4


def test_csv_leaves_boxes_identifiers_and_constants_out_and_offers_birads_commented(tmp_path, shared_data):
    src, n = tmp_path / "src", 12
    for i in range(n):
        _write(src / "us" / f"c{i}.png", _small(shared_data, f"busi/images/benign/benign_{i + 1:03d}.png"))
    pd.DataFrame({"case_id": [f"c{i}" for i in range(n)], "label": ["benign", "malignant"] * 6,
                  "age": [str(40 + i) for i in range(n)], "family_history": ["yes", "no", "no"] * 4,
                  "bbox": [f"[{91 + i},24,103,{79 + i}]" for i in range(n)],
                  "lesion_code": [f"L{i:04d}" for i in range(n)], "site": ["A"] * n,
                  "BI-RADS": ["3", "4", "5"] * 4}).to_csv(src / "clinical.csv", index=False)
    out = tmp_path / "out"
    _, frame, study = _imported(src, out, "csv", table=Path("clinical.csv"), images=("ultrasound=us/{id}.png",))
    assert study.clinical == {"age": "numeric", "family_history": "categorical"}
    assert {"bbox", "lesion_code", "site", "BI-RADS"} <= set(frame.columns)
    notes = (out / "import_notes.txt").read_text()
    assert "left out: bbox: a lesion box [x, y, w, h]" in notes
    assert "left out: lesion_code: identifier-like: 12 distinct values in 12 rows" in notes
    assert "left out: site: constant: every row with a value holds 'A'" in notes
    assert "offered, commented in study.yaml: BI-RADS (ordinal): BI-RADS is the radiologist's assessment" in notes
    text = (out / "study.yaml").read_text()
    assert "#   roi_box_column: bbox" in text and "\n  # BI-RADS: ordinal\n" in text
    assert "made before biopsy" in text
    (out / "study.yaml").write_text(text.replace("  # BI-RADS: ordinal", "  BI-RADS: ordinal"))
    included = load_study(out / "study.yaml")
    assert included.clinical["BI-RADS"] == "ordinal" and len(load_manifest(included).frame) == n


def test_an_offered_column_with_nothing_else_in_clinical_loads_commented_and_uncommented(tmp_path, shared_data):
    src = tmp_path / "src"
    _write(src / "us" / "a.png", _small(shared_data, "busi/images/benign/benign_001.png"))
    _write(src / "us" / "b.png", _small(shared_data, "busi/images/malignant/malignant_001.png"))
    pd.DataFrame({"case_id": ["a", "b"], "label": ["benign", "malignant"], "birads": ["3", "5"]}
                 ).to_csv(src / "clinical.csv", index=False)
    _, _, study = _imported(src, tmp_path / "out", "csv", table=Path("clinical.csv"),
                            images=("ultrasound=us/{id}.png",))
    assert study.clinical == {}
    path = tmp_path / "out" / "study.yaml"
    path.write_text(path.read_text().replace("  # birads: ordinal", "  birads: ordinal"))
    assert load_study(path).clinical == {"birads": "ordinal"}


def test_csv_rejects_bad_image_specs_all_at_once(tmp_path):
    (tmp_path / "clinical.csv").write_text("case_id,label\na,b\n")
    with pytest.raises(ConfigError) as err:
        run_import("csv", tmp_path, tmp_path / "out", Options(table=Path("clinical.csv"),
                                                              images=("mg", "us=us/*.png")))
    assert "--images 'mg'" in str(err.value) and "--images 'us=us/*.png'" in str(err.value)


# --- registry and command line ------------------------------------------------------------------

def test_cli_format_choices_match_the_registry():
    from pipeline.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    fmt = next(a for a in sub.choices["import"]._actions if a.dest == "format")
    assert set(fmt.choices) == set(IMPORTERS)


def test_import_help_lists_every_registry_entry_and_each_names_a_function():
    import importlib

    from pipeline.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    text = " ".join(sub.choices["import"].format_help().split())
    for name, importer in IMPORTERS.items():
        assert " ".join(f"{name} {importer.source} {importer.summary}".split()) in text
        module, function = importer.run.split(":")
        assert callable(getattr(importlib.import_module(f"pipeline.importers.{module}"), function))


def test_building_the_command_line_imports_no_importer():
    code = ("import sys; from pipeline.cli import build_parser; build_parser(); "
            "print(sorted(m for m in sys.modules if m.startswith('pipeline.importers.')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert out.stdout.strip() == "[]", out.stderr


def _cli(*args):
    return subprocess.run([sys.executable, str(REPO / "run_pipeline.py"), *args], cwd=REPO,
                          capture_output=True, text=True)


def test_cli_import_busi_then_a_bad_source_exits_2_without_traceback(tmp_path, shared_data):
    src = _busi(tmp_path / "src", shared_data)
    out = _cli("import", "busi", str(src), "--out", str(tmp_path / "out"))
    assert out.returncode == 0, out.stderr
    assert "label: benign 4, malignant 3, normal 2" in out.stdout
    assert f"run_pipeline.py run -c {tmp_path / 'out' / 'study.yaml'}" in out.stdout
    assert yaml.safe_load((tmp_path / "out" / "study.yaml").read_text())["manifest"] == "manifest.csv"
    bad = _cli("import", "busi", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out2"))
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "source folder not found" in bad.stderr


@pytest.mark.parametrize("fmt", ["busi", "folder"])
@pytest.mark.parametrize("layout", ["empty", "empty class folders"])
def test_cli_import_of_an_empty_folder_exits_2_without_traceback(tmp_path, fmt, layout):
    src = tmp_path / "src"
    src.mkdir()
    if layout == "empty class folders":
        (src / "benign").mkdir()
        (src / "malignant").mkdir()
    out = _cli("import", fmt, str(src), "--out", str(tmp_path / "out"))
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert ("no class folder" if layout == "empty" else "no image found") in out.stderr
    assert not (tmp_path / "out" / "manifest.csv").exists()


# --- views: breast level and long form ------------------------------------------------------

def test_mini_ddsm_breast_level_makes_one_case_per_breast_with_both_views(tmp_path, shared_data):
    _, frame, study = _imported(_ddsm(tmp_path / "src", shared_data), tmp_path / "out", "mini-ddsm", level="breast")
    assert len(frame) == 6 and list(frame.index[:2]) == ["C_0029_LEFT", "C_0029_RIGHT"]
    assert frame.loc["C_0029_LEFT", "mammography_cc_path"].endswith("C_0029_1.LEFT_CC.jpg")
    assert frame.loc["C_0029_LEFT", "mammography_mlo_path"].endswith("C_0029_1.LEFT_MLO.jpg")
    assert frame.loc["C_0217_RIGHT", "label"] == "malignant" and frame.loc["C_0029_LEFT", "age"] == "66"
    assert frame.groupby("patient_id").size().to_dict() == {"C_0029": 2, "C_0033": 2, "C_0217": 2}
    mammography = study.modalities["mammography"]
    assert [v.view for v in mammography.views] == ["cc", "mlo"] and mammography.pool == "mean"
    assert study.clinical == {"age": "numeric", "density": "ordinal"}
    assert len(load_manifest(study).frame) == 6


def test_cbis_breast_level_is_malignant_if_either_view_is(tmp_path, shared_data):
    src = tmp_path / "src"
    src.mkdir()
    _, frame, study = _imported(_cbis(src, shared_data, dicom=False), tmp_path / "out", "cbis-ddsm", level="breast")
    assert list(frame.index) == ["P_00001_LEFT", "P_00004_RIGHT", "P_00005_RIGHT"]
    assert frame.loc["P_00004_RIGHT", "mammography_cc_path"] == ""
    assert frame.loc["P_00004_RIGHT", "mammography_mlo_path"].endswith(".png")
    assert frame["label"].tolist() == ["malignant", "malignant", "benign"]


def _long(tmp_path, shared):
    rows = []
    for patient, side, view, label in [("w1", "L", "CC", "benign"), ("w1", "L", "MLO", "malignant"),
                                       ("w1", "R", "CC", "benign"), ("w2", "L", "CC", "normal"),
                                       ("w2", "L", "MLO", "normal"), ("w2", "L", "MLO", "normal")]:
        name = f"img/{patient}_{side}_{view}_{len(rows)}.png"
        _write(tmp_path / name, _small(shared, "mini_mias/images/mdb001.png"))
        rows.append({"patient_id": patient, "laterality": side, "view": view, "path": name, "label": label,
                     "age": {"w1": "50", "w2": "61"}[patient]})
    pd.DataFrame(rows).to_csv(tmp_path / "long.csv", index=False)
    return tmp_path / "long.csv"


def test_long_form_manifest_becomes_one_row_per_breast(tmp_path, shared_data):
    _, frame, study = _imported(_long(tmp_path, shared_data), tmp_path / "out", "long", modality="mammography")
    assert list(frame.index) == ["w1_L", "w1_R", "w2_L"]
    assert frame.loc["w1_L", "label"] == "malignant" and frame.loc["w2_L", "label"] == "normal"
    assert frame.loc["w1_R", "mammography_mlo_path"] == "" and frame.loc["w1_R", "age"] == "50"
    assert [v.view for v in study.modalities["mammography"].views] == ["cc", "mlo"]
    assert "a second mammography mlo image of case w2_L" in (tmp_path / "out" / "import_notes.txt").read_text()


def test_long_form_without_view_or_path_lists_what_is_missing(tmp_path):
    pd.DataFrame([{"patient_id": "a", "label": "benign"}]).to_csv(tmp_path / "bad.csv", index=False)
    text = _problems("long", tmp_path / "bad.csv", tmp_path / "out")
    assert "column 'view'" in text and "no image path column" in text and "laterality" in text


def test_real_mini_ddsm_subset_in_long_form_pairs_every_cc_with_its_mlo(tmp_path, shared_data):
    _, frame, study = _imported(shared_data / "mini_ddsm_subset" / "manifest.csv", tmp_path / "out", "long",
                                modality="mammography", level="breast")
    assert len(frame) == 20 and (frame["mammography_cc_path"] != "").all() and (frame["mammography_mlo_path"] != "").all()
    assert all("CC" in cc and "MLO" in mlo for cc, mlo in zip(frame["mammography_cc_path"], frame["mammography_mlo_path"]))
