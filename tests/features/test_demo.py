"""The synthetic demo study: reproducible, shaped like a real manifest, label-bearing images."""

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from features.demo import DEMO_CLINICAL_COLUMNS, MANIFEST_COLUMNS, make_demo_study
from features.errors import FeaturesError

N_CASES = 32


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """One seed-0 study shared by the read-only tests (generation is the slow part)."""
    manifest = make_demo_study(tmp_path_factory.mktemp("demo"), n_cases=N_CASES, seed=0)
    return manifest, _read(manifest)


def _read(manifest: Path) -> pd.DataFrame:
    """Read as text so empty cells stay visible as empty strings, as a user's manifest would."""
    return pd.read_csv(manifest, dtype=str, keep_default_na=False)


def _hashes(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_byte_identical_files(tmp_path):
    a = make_demo_study(tmp_path / "a", n_cases=12, seed=3, mammo_size=96, us_size=80)
    b = make_demo_study(tmp_path / "b", n_cases=12, seed=3, mammo_size=96, us_size=80)
    assert _hashes(a.parent) == _hashes(b.parent)


def test_different_seed_gives_different_study(tmp_path):
    a = make_demo_study(tmp_path / "a", n_cases=12, seed=3, mammo_size=96, us_size=80)
    b = make_demo_study(tmp_path / "b", n_cases=12, seed=4, mammo_size=96, us_size=80)
    assert a.read_bytes() != b.read_bytes()
    images_a = {k: v for k, v in _hashes(a.parent).items() if k.endswith(".png")}
    images_b = {k: v for k, v in _hashes(b.parent).items() if k.endswith(".png")}
    assert not set(images_a.values()) & set(images_b.values())


def test_no_temporary_files_are_left_behind(study):
    manifest, _ = study
    assert not [p for p in manifest.parent.rglob("*") if p.name.endswith(".tmp")]


def test_manifest_has_the_documented_columns_in_order(study):
    _, df = study
    assert list(df.columns) == MANIFEST_COLUMNS
    assert MANIFEST_COLUMNS[5:] == list(DEMO_CLINICAL_COLUMNS)
    assert len(df) == N_CASES


def test_case_ids_are_unique_and_patients_fewer_than_cases(study):
    _, df = study
    assert df["case_id"].is_unique
    assert df["case_id"].iloc[0] == "demo_0001"
    assert 1 <= df["patient_id"].nunique() < len(df)


def test_cases_of_one_patient_share_age_and_family_history(study):
    _, df = study
    per_patient = df.groupby("patient_id")[["age", "family_history"]].nunique()
    assert (per_patient <= 1).all().all()


def test_both_labels_present_with_malignant_a_minority(study):
    _, df = study
    assert set(df["label"]) == {"benign", "malignant"}
    assert 0.25 <= (df["label"] == "malignant").mean() <= 0.55


def test_some_modalities_missing_but_never_both(study):
    _, df = study
    no_mammo = df["mammography_path"] == ""
    no_us = df["ultrasound_path"] == ""
    assert no_mammo.any() and no_us.any()
    assert not (no_mammo & no_us).any()


def test_clinical_values_have_their_types_and_some_are_missing(study):
    _, df = study
    for column in ("age", "density", "family_history"):
        assert (df[column] == "").any(), column
    assert (df["birads"] != "").all()
    ages = df.loc[df["age"] != "", "age"]
    assert ages.str.fullmatch(r"\d+").all()  # integers, not "62.0"
    assert ages.astype(int).between(25, 90).all()
    assert set(df.loc[df["density"] != "", "density"]) <= {"1", "2", "3", "4"}
    assert set(df.loc[df["family_history"] != "", "family_history"]) <= {"yes", "no"}
    assert set(df["birads"]) <= {"2", "3", "4", "5"}


def test_malignant_cases_are_older_with_higher_birads(study):
    _, df = study
    malignant = df["label"] == "malignant"
    age = pd.to_numeric(df["age"].replace("", np.nan))
    birads = df["birads"].astype(int)
    assert age[malignant].mean() > age[~malignant].mean()
    assert birads[malignant].mean() > birads[~malignant].mean()


def test_images_exist_only_where_listed_and_at_the_requested_size(study):
    manifest, df = study
    root = manifest.parent
    for column, size in (("mammography_path", 256), ("ultrasound_path", 192)):
        listed = df.loc[df[column] != ""]
        for rel in listed[column]:
            image = cv2.imread(str(root / rel), cv2.IMREAD_UNCHANGED)
            assert image is not None and image.shape == (size, size) and image.dtype == np.uint8
        missing = df.loc[df[column] == "", "case_id"]
        folder = "mammography" if column.startswith("mammo") else "ultrasound"
        assert not any((root / "images" / folder / f"{c}.png").exists() for c in missing)


def test_readme_says_the_data_is_synthetic_and_names_the_seed(study):
    manifest, _ = study
    text = (manifest.parent / "README.md").read_text()
    assert "synthetic" in text.lower() and "seed 0" in text
    assert 3 <= len([line for line in text.splitlines() if line.strip()]) <= 6


def test_mammograms_carry_a_corner_label_apart_from_the_breast(study):
    """An Otsu crop of the largest region must be able to drop the film marker."""
    manifest, df = study
    for rel in df.loc[df["mammography_path"] != "", "mammography_path"]:
        image = cv2.imread(str(manifest.parent / rel), cv2.IMREAD_GRAYSCALE)
        assert _corner_label_apart_from_breast(image), rel


def _corner_label_apart_from_breast(image) -> bool:
    size = image.shape[0]
    _, binary = cv2.threshold(image, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    n, labels, stats, centroids = cv2.connectedComponentsWithStats(binary)
    breast = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    breast_on_left = centroids[breast][0] < size / 2
    for k in range(1, n):
        x, y, w, h, area = stats[k]
        near_x_edge = x + w < 0.35 * size or x > 0.65 * size
        near_y_edge = y + h < 0.35 * size or y > 0.65 * size
        in_corner = near_x_edge and near_y_edge
        far_side = (x > size / 2) == breast_on_left
        bright = image[labels == k].mean() > image[labels == breast].mean()
        if k != breast and area > 0.002 * size ** 2 and in_corner and far_side and bright:
            return True
    return False


def _ultrasound_lesion_features(image):
    """Aspect ratio of the darkest blob and the brightness below it relative to beside it."""
    u = image.shape[0]
    smooth = cv2.GaussianBlur(image.astype(np.float32), (0, 0), 3)
    top, left = int(0.3 * u), int(0.2 * u)
    window = smooth[top:int(0.65 * u), left:int(0.8 * u)]
    cy, cx = np.unravel_index(np.argmin(window), window.shape)
    cy, cx = cy + top, cx + left
    dark = (smooth < 0.5 * np.median(smooth[top:int(0.6 * u)])).astype(np.uint8)
    _, labels, stats, _ = cv2.connectedComponentsWithStats(dark)
    blob = labels[cy, cx]
    aspect = stats[blob, cv2.CC_STAT_HEIGHT] / stats[blob, cv2.CC_STAT_WIDTH]
    rows = slice(cy + int(0.2 * u), cy + int(0.4 * u))
    half, near, far = int(0.04 * u), int(0.2 * u), int(0.3 * u)
    below = smooth[rows, cx - half:cx + half].mean()
    beside = np.concatenate([smooth[rows, max(cx - far, 0):max(cx - near, 0)].ravel(),
                             smooth[rows, cx + near:cx + far].ravel()]).mean()
    return aspect, below / beside


def test_ultrasound_lesions_look_different_by_label(study):
    """Malignant: taller than wide with a shadow; benign: wider than tall with enhancement."""
    manifest, df = study
    rows = df.loc[df["ultrasound_path"] != ""]
    features = np.array([
        _ultrasound_lesion_features(cv2.imread(str(manifest.parent / rel), cv2.IMREAD_GRAYSCALE))
        for rel in rows["ultrasound_path"]
    ])
    malignant = (rows["label"] == "malignant").to_numpy()
    aspect, posterior = features[:, 0], features[:, 1]
    assert aspect[malignant].mean() > aspect[~malignant].mean()
    assert posterior[malignant].mean() < posterior[~malignant].mean()
    assert np.median(aspect[~malignant]) < 1.0 < np.median(aspect[malignant])


@pytest.mark.parametrize("kwargs", [{"n_cases": 2}, {"mammo_size": 16}, {"us_size": 8}])
def test_impossible_settings_are_refused_with_a_clear_error(tmp_path, kwargs):
    with pytest.raises(FeaturesError, match="|".join(kwargs)):
        make_demo_study(tmp_path, **kwargs)


# --------------------------------------------------------------------------- sites

SMALL = {"n_cases": 12, "seed": 3, "mammo_size": 96, "us_size": 80}
# sha256 of manifest.csv for SMALL, as the generator wrote it before sites existed.
SITE_A_SMALL_MANIFEST = "0d762092ca032aa1a144319e85dadf6fb4f14e77badab736862cd8361328e3ef"


@pytest.fixture(scope="module")
def two_sites(tmp_path_factory):
    """Sites a and b with the same seed and size: the shift is all that differs."""
    root = tmp_path_factory.mktemp("sites")
    return {site: make_demo_study(root / site, n_cases=40, seed=0, mammo_size=96, us_size=80,
                                  site=site) for site in ("a", "b")}


def test_site_a_is_the_default_byte_for_byte(tmp_path):
    default = make_demo_study(tmp_path / "default", **SMALL)
    site_a = make_demo_study(tmp_path / "a", **SMALL, site="a")
    assert _hashes(default.parent) == _hashes(site_a.parent)
    assert hashlib.sha256(site_a.read_bytes()).hexdigest() == SITE_A_SMALL_MANIFEST


def test_site_b_has_the_same_columns_and_other_images(two_sites):
    a, b = (_read(two_sites[s]) for s in ("a", "b"))
    assert list(b.columns) == MANIFEST_COLUMNS == list(a.columns)
    images_a = {v for k, v in _hashes(two_sites["a"].parent).items() if k.endswith(".png")}
    images_b = {v for k, v in _hashes(two_sites["b"].parent).items() if k.endswith(".png")}
    assert images_b and not images_a & images_b


def test_site_b_ids_and_paths_never_collide_with_site_a(two_sites):
    a, b = (_read(two_sites[s]) for s in ("a", "b"))
    for column in ("case_id", "patient_id", "mammography_path", "ultrasound_path"):
        assert not (set(a[column]) - {""}) & (set(b[column]) - {""}), column
    assert b["case_id"].str.startswith("demoB_").all()
    assert b["case_id"].is_unique and 1 <= b["patient_id"].nunique() < len(b)


@pytest.mark.parametrize("site, share", [("a", 0.40), ("b", 0.30)])
def test_malignant_share_follows_the_site_prior(two_sites, site, share):
    df = _read(two_sites[site])
    assert (df["label"] == "malignant").mean() == pytest.approx(share, abs=1 / len(df))


def _noise_level(path):
    """Median absolute residual after a 3x3 median filter, inside the imaged tissue."""
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    residual = image.astype(np.float32) - cv2.medianBlur(image, 3).astype(np.float32)
    return float(np.median(np.abs(residual[image > 20])))


@pytest.mark.parametrize("column", ["mammography_path", "ultrasound_path"])
def test_site_b_images_are_noisier_than_site_a(two_sites, column):
    levels = {}
    for site, manifest in two_sites.items():
        df = _read(manifest)
        listed = df.loc[df[column] != "", column]
        levels[site] = [_noise_level(manifest.parent / rel) for rel in listed]
    assert max(levels["a"]) < min(levels["b"])


def test_site_b_readme_names_the_site(two_sites):
    assert "site b" in (two_sites["b"].parent / "README.md").read_text()
    assert "site" not in (two_sites["a"].parent / "README.md").read_text()  # the demo's old text


def test_an_unknown_site_is_refused_naming_the_choices(tmp_path):
    with pytest.raises(FeaturesError, match=r"unknown demo site 'c'.*'a', 'b'"):
        make_demo_study(tmp_path, site="c")
    assert not any(tmp_path.iterdir())
