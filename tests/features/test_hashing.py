"""Hashing and versions: the exact JSON rendering caches are keyed by, and no heavy imports."""

import hashlib
import subprocess
import sys
from pathlib import Path

from features.hashing import file_sha256, hash_json, tensorflow_version, version_of

REPO = Path(__file__).resolve().parents[2]


def test_hash_json_is_the_sha256_of_sorted_compact_json():
    expected = hashlib.sha256(b'{"a":[1,"2"],"b":{"c":null},"p":"/x"}').hexdigest()
    assert hash_json({"p": Path("/x"), "b": {"c": None}, "a": [1, "2"]}) == expected


def test_file_sha256_hashes_the_bytes_across_chunks(tmp_path):
    path = tmp_path / "blob"
    path.write_bytes(b"0123456789" * 1000)
    assert file_sha256(path, chunk=7) == hashlib.sha256(b"0123456789" * 1000).hexdigest()


def test_versions_come_from_metadata():
    assert version_of("numpy") and version_of("no-such-distribution-here") is None
    assert tensorflow_version() == (version_of("tensorflow") or version_of("tensorflow-cpu"))


def test_hashing_imports_no_image_library_nor_numpy():
    code = ("import sys, features.hashing\n"
            "print(sorted(m for m in ('cv2', 'skimage', 'tensorflow', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
