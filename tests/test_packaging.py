"""The code wheel: small (the default model only; the others are model packages), with the
package data the commands need."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_code_wheel_is_small_and_holds_only_the_default_model(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(tmp_path), str(REPO)], check=True, cwd=tmp_path, timeout=600)
    (wheel,) = tmp_path.glob("tagstream-*.whl")
    size_mb = wheel.stat().st_size / 2**20
    assert size_mb < 40, f"{wheel.name} is {size_mb:.1f} MiB: PyPI refuses files over 100 MB"
    names = zipfile.ZipFile(wheel).namelist()
    assert [n for n in names if n.endswith(".pt")] == ["tagstream/model/artifacts/en-news.pt"]
    assert "tagstream/worker/demo_sentences.txt" in names
    for model_dir in sorted(REPO.glob("models/*")):  # each other model builds on its own
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                        "--wheel-dir", str(tmp_path / model_dir.name), str(model_dir)],
                       check=True, cwd=tmp_path, timeout=600)
        (model_wheel,) = (tmp_path / model_dir.name).glob("*.whl")
        inside = zipfile.ZipFile(model_wheel).namelist()
        assert f"tagstream_model_{model_dir.name.replace('-', '_')}/{model_dir.name}.pt" in inside
        assert any(n.endswith("entry_points.txt") for n in inside)
