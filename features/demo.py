"""Synthetic paired mammography + ultrasound study for the built-in demo and the tests.

Nothing here is real patient data: the images are drawn from a few shape rules chosen so that the
label shows in the pictures (spiculated vs round masses, shadowing vs enhancement) without being
trivially separable, and the clinical table follows textbook trends (older, denser, higher BI-RADS
for malignant cases). Same seed, same bytes.

Two sites share those rules: "a" (the demo) and "b", a second hospital with a known shift (noisier,
lower-contrast images, fewer malignant cases, older patients) for external-validation examples.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from features.errors import FeaturesError

DEMO_CLINICAL_COLUMNS = {
    "age": "numeric",
    "density": "ordinal",
    "family_history": "categorical",
    "birads": "ordinal",
}

MANIFEST_COLUMNS = ["case_id", "patient_id", "label", "mammography_path", "ultrasound_path",
                    *DEMO_CLINICAL_COLUMNS]

_PAIRED_PATIENT_SHARE = 0.15   # share of patients with two cases (e.g. both breasts)
_MISSING_MODALITY_SHARE = 0.08  # per modality, never both for one case
_MISSING_CLINICAL_SHARE = 0.05  # per clinical column (birads is always present)
_ATYPICAL_SHARE = 0.12          # lesions drawn with the other class's look: images are not perfect

_DENSITY_P = {"benign": [0.20, 0.35, 0.30, 0.15], "malignant": [0.08, 0.25, 0.40, 0.27]}
_BIRADS_P = {"benign": [0.35, 0.35, 0.25, 0.05], "malignant": [0.02, 0.08, 0.45, 0.45]}
_DENSE_FRACTION = {1: 0.08, 2: 0.25, 3: 0.50, 4: 0.75}  # share of the breast that is fibroglandular

# What differs between sites. Site "a" is the original demo and keeps its bytes: its generator is
# seeded with the seed alone and its factors are exactly 1.0. Other sites seed [seed, stream], so
# their cases are new draws, not noisier copies of site a's. Site b's shift, measured once
# (handcrafted features + clinical columns, logistic regression fitted on 120 site-a cases):
# AUC 0.84-0.89 on 200 new site-a cases, 0.70-0.84 on 200 site-b cases (seeds 0-2).
_SITES = {
    "a": {"id_prefix": "demo_", "stream": None, "malignant_share": 0.40,
          "age": {"malignant": (62, 9), "benign": (50, 10)},
          "mammo_noise": 2.5, "us_noise": 2.0, "contrast": 1.0},
    "b": {"id_prefix": "demoB_", "stream": 0xB, "malignant_share": 0.30,
          "age": {"malignant": (60, 10), "benign": (54, 11)},
          "mammo_noise": 8.0, "us_noise": 8.0, "contrast": 0.5},
}


def make_demo_study(out_dir: Path, n_cases: int = 120, seed: int = 0,
                    mammo_size: int = 256, us_size: int = 192, site: str = "a") -> Path:
    """Write a synthetic study (images, manifest.csv, README.md) under out_dir; return the manifest.

    Each case draws its images from its own child generator (the i-th spawn of the seed), so a
    case's pictures depend on the seed, its index and its table row, not on global random state.
    `site` picks the hospital ("a", the demo, or "b", the shifted one); ids differ across sites.
    """
    if site not in _SITES:
        choices = ", ".join(map(repr, _SITES))
        raise FeaturesError(f"unknown demo site {site!r}: expected one of {choices}")
    params = _SITES[site]
    if int(n_cases) < 4:
        raise FeaturesError(f"the demo study needs at least 4 cases, got n_cases={n_cases}")
    for name, size in (("mammo_size", mammo_size), ("us_size", us_size)):
        if int(size) < 64:
            raise FeaturesError(f"{name} must be at least 64 pixels, got {size}")
    out_dir = Path(out_dir)
    root = np.random.default_rng(seed if params["stream"] is None else [seed, params["stream"]])
    table_rng, image_rng = root.spawn(2)
    table = _clinical_table(table_rng, int(n_cases), params)
    case_rngs = image_rng.spawn(int(n_cases))

    for sub in ("mammography", "ultrasound"):
        (out_dir / "images" / sub).mkdir(parents=True, exist_ok=True)
    for row, case_rng in zip(table.itertuples(index=False), case_rngs):
        mammo_rng, us_rng = case_rng.spawn(2)
        malignant = row.label == "malignant"
        if row.mammography_path:
            image = _mammogram(mammo_rng, malignant, int(row.true_density), int(mammo_size), params)
            _write_png(out_dir / row.mammography_path, image)
        if row.ultrasound_path:
            image = _ultrasound(us_rng, malignant, int(us_size), params)
            _write_png(out_dir / row.ultrasound_path, image)

    manifest = out_dir / "manifest.csv"
    csv_text = table[MANIFEST_COLUMNS].to_csv(index=False, lineterminator="\n")
    _write_bytes(manifest, csv_text.encode("utf-8"))
    _write_bytes(out_dir / "README.md", _readme(seed, int(n_cases), site).encode("utf-8"))
    return manifest


# --------------------------------------------------------------------------- clinical table


def _clinical_table(rng: np.random.Generator, n: int, params: dict) -> pd.DataFrame:
    """Cases, patients, labels, missing modalities and clinical values in the documented shares."""
    n_pairs = max(1, round(n * _PAIRED_PATIENT_SHARE / (1 + _PAIRED_PATIENT_SHARE)))
    n_patients = n - n_pairs
    patient_of_case = rng.permutation(np.concatenate([np.arange(n_patients), np.arange(n_pairs)]))
    # Number patients by first appearance so ids read in order down the manifest.
    _, first = np.unique(patient_of_case, return_index=True)
    order = np.empty(n_patients, dtype=int)
    order[np.argsort(first)] = np.arange(n_patients)
    patient_of_case = order[patient_of_case]

    n_malignant = min(n - 1, max(1, round(n * params["malignant_share"])))
    malignant = rng.permutation(np.arange(n) < n_malignant)
    labels = np.where(malignant, "malignant", "benign")

    # Age and family history belong to the patient; a patient with any malignant case follows the
    # malignant distribution.
    patient_malignant = np.zeros(n_patients, dtype=bool)
    np.logical_or.at(patient_malignant, patient_of_case, malignant)
    age = params["age"]
    age_p = np.where(patient_malignant, rng.normal(*age["malignant"], n_patients),
                     rng.normal(*age["benign"], n_patients))
    age_p = np.clip(np.rint(age_p), 25, 90).astype(int)
    family_p = rng.random(n_patients) < np.where(patient_malignant, 0.35, 0.12)

    density = np.array([rng.choice([1, 2, 3, 4], p=_DENSITY_P[lab]) for lab in labels])
    birads = np.array([rng.choice([2, 3, 4, 5], p=_BIRADS_P[lab]) for lab in labels])

    width = max(4, len(str(n)))
    prefix = params["id_prefix"]
    case_ids = [f"{prefix}{i + 1:0{width}d}" for i in range(n)]
    table = pd.DataFrame({
        "case_id": case_ids,
        "patient_id": [f"{prefix}p{p + 1:0{width}d}" for p in patient_of_case],
        "label": labels,
        "mammography_path": [f"images/mammography/{c}.png" for c in case_ids],
        "ultrasound_path": [f"images/ultrasound/{c}.png" for c in case_ids],
        "age": pd.array(age_p[patient_of_case], dtype="Int64"),
        "density": pd.array(density, dtype="Int64"),
        "family_history": np.where(family_p[patient_of_case], "yes", "no").astype(object),
        "birads": birads,
        "true_density": density,  # drives the image even when the table hides the value
    })

    n_missing = max(1, round(n * _MISSING_MODALITY_SHARE))
    drop = rng.permutation(n)[: 2 * n_missing]  # disjoint, so no case loses both modalities
    table.loc[drop[:n_missing], "mammography_path"] = ""
    table.loc[drop[n_missing:], "ultrasound_path"] = ""

    # Patient-level values go missing for the whole patient, so a patient's rows still agree.
    for column in ("age", "family_history"):
        hidden = _pick(rng, n_patients, _MISSING_CLINICAL_SHARE)
        table.loc[np.isin(patient_of_case, hidden), column] = pd.NA if column == "age" else None
    table.loc[_pick(rng, n, _MISSING_CLINICAL_SHARE), "density"] = pd.NA
    return table


def _pick(rng: np.random.Generator, n: int, share: float) -> np.ndarray:
    """About `share` of range(n), at least one, so small demo studies still show the feature."""
    return rng.permutation(n)[: max(1, round(n * share))]


# --------------------------------------------------------------------------- mammography


def _mammogram(rng: np.random.Generator, malignant: bool, density: int, size: int,
               params: dict) -> np.ndarray:
    """A breast half-ellipse on black, density-driven texture, a corner film label and one mass."""
    s = size
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32)
    right = bool(rng.integers(2))
    depth = np.float32(rng.uniform(0.50, 0.80) * s)  # chest wall to nipple
    half_h = np.float32(rng.uniform(0.32, 0.45) * s)
    cy = np.float32(rng.uniform(0.45, 0.55) * s)
    dx = (s - 1 - xx) if right else xx  # distance from the chest wall
    r = np.sqrt((dx / depth) ** 2 + ((yy - cy) / half_h) ** 2)
    breast = r < 1.0
    thickness = np.sqrt(np.clip(1.0 - r ** 2, 0.0, 1.0))  # compressed breast thins towards the skin

    fat = rng.uniform(70, 95) * (0.55 + 0.45 * np.sqrt(thickness))
    fat += 4 * _smooth_noise(rng, s, s / 15)
    image = np.where(breast, fat, 0.0)
    image += _fibroglandular(rng, breast, dx / depth, density, s) * thickness ** 0.3
    if rng.random() < 0.5:  # MLO view: pectoral muscle as a bright wedge at the chest wall
        py = rng.uniform(0.25, 0.45) * s
        px = rng.uniform(0.15, 0.25) * s
        muscle = breast & (dx / px + yy / py < 1.0)
        shade = rng.uniform(130, 160) - 30 * (dx / px + yy / py) + 5 * _smooth_noise(rng, s, s / 40)
        image[muscle] = np.maximum(image[muscle], shade[muscle])
        view = "MLO"
    else:
        view = "CC"

    lesion_x, lesion_y = _lesion_site(rng, depth, half_h, cy, right, s)
    looks_malignant = malignant != (rng.random() < _ATYPICAL_SHARE)
    radius = rng.uniform(0.035, 0.07) * s
    contrast = rng.uniform(50, 85) * params["contrast"]
    if looks_malignant:
        lesion = _spiculated_mass(rng, xx - lesion_x, yy - lesion_y, radius, s)
    else:
        lesion = _round_mass(rng, xx - lesion_x, yy - lesion_y, radius)
    image += contrast * lesion * breast

    image = cv2.GaussianBlur(image.astype(np.float32), (0, 0), 0.6)
    image += rng.normal(0.0, params["mammo_noise"], image.shape).astype(np.float32)
    image = np.clip(image, 0, 255).astype(np.uint8)
    _film_label(rng, image, right, "R" if right else "L", view)
    return image


def _sigmoid(z) -> np.ndarray:
    """Soft 0..1 edge; tanh form so large arguments do not overflow."""
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def _smooth_noise(rng: np.random.Generator, size: int, sigma: float) -> np.ndarray:
    """Unit-variance Gaussian noise blurred to blobs of about sigma pixels."""
    field = cv2.GaussianBlur(rng.standard_normal((size, size)).astype(np.float32), (0, 0), sigma)
    return field / (field.std() + 1e-6)


def _fibroglandular(rng, breast, depth_frac, density, s) -> np.ndarray:
    """Bright cloudy tissue over about the density's share of the breast, nearer the chest wall."""
    field = _smooth_noise(rng, s, s / 25) + 0.5 * _smooth_noise(rng, s, s / 80)
    field -= 1.2 * depth_frac  # glandular tissue sits behind the nipple, towards the chest wall
    share = np.clip(_DENSE_FRACTION[density] + rng.uniform(-0.05, 0.05), 0.03, 0.9)
    threshold = np.quantile(field[breast], 1.0 - share)
    dense = _sigmoid((field - threshold) / 0.5)
    # Ducts and Cooper's ligaments run from the chest wall to the nipple: horizontal streaks.
    streaks = cv2.GaussianBlur(rng.standard_normal((s, s)).astype(np.float32), (0, 0),
                               sigmaX=s / 16, sigmaY=s / 160)
    streaks /= streaks.std() + 1e-6
    texture = 1.0 + 0.12 * streaks + 0.10 * _smooth_noise(rng, s, 1.5)
    return rng.uniform(55, 80) * dense * texture * breast


def _lesion_site(rng, depth, half_h, cy, right, s):
    """A point well inside the breast (not on the skin line, not at the image edge)."""
    rr = 0.2 + 0.4 * np.sqrt(rng.random())
    angle = rng.uniform(-1.1, 1.1)
    dx = max(depth * rr * np.cos(angle), 0.12 * s)
    y = cy + half_h * rr * np.sin(angle)
    return (s - 1 - dx if right else dx), y


def _round_mass(rng, x, y, radius) -> np.ndarray:
    """Benign look: an oval, dome-shaped density with a smooth, well-defined border."""
    theta = rng.uniform(0, np.pi)
    c, s_ = np.cos(theta), np.sin(theta)
    u, v = c * x + s_ * y, -s_ * x + c * y
    rho = np.sqrt((u / radius) ** 2 + (v / (radius * rng.uniform(0.65, 1.0))) ** 2)
    edge = _sigmoid((1.0 - rho) * radius / 1.2)
    return edge * (0.75 + 0.25 * np.sqrt(np.clip(1 - rho ** 2, 0, 1)))


def _spiculated_mass(rng, x, y, radius, s) -> np.ndarray:
    """Malignant look: an irregular core with thin bright lines radiating from it."""
    phi = np.arctan2(y, x)
    dist = np.sqrt(x ** 2 + y ** 2)
    outline = np.ones_like(phi)
    for k in range(2, 9):
        outline += rng.uniform(0.0, 0.10) * np.cos(k * phi + rng.uniform(0, 2 * np.pi))
    core = _sigmoid((radius * 0.8 * outline - dist) / 0.8)

    lines = np.zeros((s, s), dtype=np.uint8)
    cx, cy = -x[0, 0], -y[0, 0]  # the lesion centre in pixel coordinates
    for _ in range(int(rng.integers(6, 15))):
        a = rng.uniform(0, 2 * np.pi)
        length = radius * rng.uniform(1.3, 2.8)
        start = (cx + 0.5 * radius * np.cos(a), cy + 0.5 * radius * np.sin(a))
        end = (cx + length * np.cos(a), cy + length * np.sin(a))
        value = int(255 * rng.uniform(0.4, 0.8))
        _draw_line(lines, start, end, value)
    spicules = cv2.GaussianBlur(lines.astype(np.float32) / 255.0, (0, 0), 0.7)
    return np.maximum(core, spicules)


def _draw_line(canvas, start, end, value) -> None:
    """Anti-aliased line with sub-pixel endpoints (cv2 takes fixed-point coordinates)."""
    shift = 4
    p0 = tuple(int(round(c * (1 << shift))) for c in start)
    p1 = tuple(int(round(c * (1 << shift))) for c in end)
    cv2.line(canvas, p0, p1, int(value), 1, cv2.LINE_AA, shift)


def _film_label(rng, image, breast_right, laterality, view) -> None:
    """Bright marker in a corner away from the breast, so a largest-region crop drops it."""
    s = image.shape[0]
    w = int(rng.uniform(0.14, 0.20) * s)
    h = int(rng.uniform(0.07, 0.10) * s)
    margin = int(rng.uniform(0.02, 0.05) * s)
    x0 = margin if breast_right else s - margin - w
    y0 = margin if rng.random() < 0.5 else s - margin - h
    cv2.rectangle(image, (x0, y0), (x0 + w - 1, y0 + h - 1), int(rng.integers(225, 256)), -1)
    text = f"{laterality} {view}"
    font = cv2.FONT_HERSHEY_SIMPLEX
    (tw, th), _ = cv2.getTextSize(text, font, 1.0, 1)
    scale = min((w - 6) / tw, (h - 6) / th)
    (tw, th), _ = cv2.getTextSize(text, font, scale, 1)
    origin = (x0 + (w - tw) // 2, y0 + (h + th) // 2)
    cv2.putText(image, text, origin, font, scale, 30, 1, cv2.LINE_AA)


# --------------------------------------------------------------------------- ultrasound


def _ultrasound(rng: np.random.Generator, malignant: bool, size: int, params: dict) -> np.ndarray:
    """Speckled tissue layers with one hypoechoic lesion and its posterior shadow or enhancement."""
    u = size
    yy, xx = np.mgrid[0:u, 0:u].astype(np.float32)
    depth = yy / u
    skin_end = rng.uniform(0.04, 0.06)
    fat_end = rng.uniform(0.18, 0.26) + 0.02 * _boundary_wave(rng, u)
    gland_end = rng.uniform(0.66, 0.76) + 0.03 * _boundary_wave(rng, u)

    base = np.full((u, u), 0.45, dtype=np.float32)  # pectoral muscle at the bottom
    base += 0.08 * np.sin(yy * rng.uniform(0.5, 0.8)) * (depth > gland_end)  # muscle striations
    gland = (depth >= fat_end) & (depth < gland_end)
    base[gland] = 0.62 + 0.12 * _smooth_noise(rng, u, u / 30)[gland]
    fat = (depth >= skin_end) & (depth < fat_end)
    base[fat] = 0.35 + 0.06 * _smooth_noise(rng, u, u / 20)[fat]
    base[depth < skin_end] = 0.85

    looks_malignant = malignant != (rng.random() < _ATYPICAL_SHARE)
    cx = rng.uniform(0.3, 0.7) * u
    cy = rng.uniform(0.40, 0.52) * u
    if looks_malignant:  # taller than wide, angular margin, shadow behind it
        half_w = rng.uniform(0.07, 0.12) * u
        half_h = half_w * rng.uniform(0.95, 1.6)
        roughness, gain = rng.uniform(0.06, 0.14), rng.uniform(0.35, 0.8)
    else:  # wider than tall, smooth margin, enhancement behind it
        half_w = rng.uniform(0.10, 0.17) * u
        half_h = half_w * rng.uniform(0.45, 0.85)
        roughness, gain = rng.uniform(0.0, 0.04), rng.uniform(1.2, 1.6)
    lesion = _us_lesion(rng, xx - cx, yy - cy, half_w, half_h, roughness)
    echo = rng.uniform(0.12, 0.3) * (1 + 0.3 * _smooth_noise(rng, u, 2.0) * looks_malignant)

    beam = _sigmoid((0.85 * half_w - np.abs(xx - cx)) / 2.5)
    behind = _sigmoid((yy - (cy + 0.8 * half_h)) / 2.0)
    fade = np.exp(-np.maximum(yy - cy - half_h, 0) / (u * (0.9 if gain < 1 else 0.35)))
    contrast = params["contrast"]  # weaker lesion darkening and posterior shadow or enhancement
    posterior = 1.0 + (gain - 1.0) * contrast * beam * behind * fade

    tissue = base * posterior * (1.0 - contrast * lesion * (1.0 - echo))
    tissue *= 1.0 - 0.35 * depth  # attenuation with depth (time-gain compensation is imperfect)
    speckle = cv2.GaussianBlur(rng.rayleigh(1.0, (u, u)).astype(np.float32), (0, 0), sigmaX=1.0,
                               sigmaY=0.6)
    speckle /= speckle.mean()
    image = 190.0 * tissue * speckle + rng.normal(0.0, params["us_noise"], (u, u))
    return np.clip(image, 0, 255).astype(np.uint8)


def _boundary_wave(rng, u) -> np.ndarray:
    """A gently undulating unit-scale offset per column, so tissue layers are not ruler-straight."""
    wave = cv2.GaussianBlur(rng.standard_normal((1, u)).astype(np.float32), (0, 0), u / 8)
    return wave / (wave.std() + 1e-6)


def _us_lesion(rng, x, y, half_w, half_h, roughness) -> np.ndarray:
    """Soft 0..1 mask of an ellipse whose outline wobbles by `roughness` (0 = smooth oval)."""
    phi = np.arctan2(y / half_h, x / half_w)
    outline = np.ones_like(phi)
    for k in range(3, 12):
        outline += roughness * 2.0 / k * np.cos(k * phi + rng.uniform(0, 2 * np.pi))
    rho = np.sqrt((x / half_w) ** 2 + (y / half_h) ** 2)
    return _sigmoid((outline - rho) * min(half_w, half_h) / 1.5)


# --------------------------------------------------------------------------- writing


def _readme(seed: int, n_cases: int, site: str) -> str:
    # Site a's text is the demo's from before sites existed, so its README keeps its bytes too.
    where = "" if site == "a" else (
        f", site {site} (a second hospital: noisier, lower-contrast images, "
        f"{_SITES[site]['malignant_share']:.0%} malignant)")
    return (
        "# BreastFuse demo study (synthetic)\n\n"
        f"These {n_cases} cases were made by BreastFuse's demo generator (features/demo.py) "
        f"with seed {seed}{where}.\n"
        "Every image and clinical value is synthetic: no real patients, not for any clinical use.\n"
        "Real datasets plug in the same way, through a manifest.csv like the one here.\n"
    )


def _write_png(path: Path, image: np.ndarray) -> None:
    ok, buffer = cv2.imencode(".png", image)
    if not ok:  # pragma: no cover - cv2 only fails here on a broken install
        raise RuntimeError(f"cv2 could not encode {path}")
    _write_bytes(path, buffer.tobytes())


def _write_bytes(path: Path, data: bytes) -> None:
    """Whole or not at all: a temporary file in the same folder, then an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
