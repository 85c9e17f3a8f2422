"""Installable anywhere: shipped classifiers and taxonomy are found through the package, not the current folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from pipeline import paths
from pipeline.config import DEFAULT_ENCODER

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_do_not_depend_on_the_current_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CALLCYCLE_MODELS", raising=False)
    monkeypatch.delenv("CALLCYCLE_TAXONOMY", raising=False)
    models = paths.models_dir()
    assert models.is_absolute() and (models / "CURRENT").is_file()
    assert (models / (models / "CURRENT").read_text().strip() / "card.json").is_file()
    assert paths.taxonomy_path().is_absolute() and paths.taxonomy_path().is_file()


def test_explicit_and_environment_paths_win(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLCYCLE_MODELS", str(tmp_path / "m"))
    assert paths.models_dir() == tmp_path / "m"
    assert paths.models_dir("given") == Path("given")
    monkeypatch.setenv("CALLCYCLE_TAXONOMY", str(tmp_path / "t.toml"))
    assert paths.taxonomy_path() == tmp_path / "t.toml"


def test_cli_classifies_from_another_folder(tmp_path: Path) -> None:
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"text": "I will send the contract by Friday."}) + "\n")
    env = {k: v for k, v in os.environ.items() if k not in {"CALLCYCLE_MODELS", "CALLCYCLE_TAXONOMY"}}
    result = subprocess.run([sys.executable, "-m", "cli", "classify", str(rows)], cwd=tmp_path,
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["talk_action"] in {"talk", "action"}


def test_wheel_carries_current_model_and_taxonomy(tmp_path: Path) -> None:
    """The wheel holds CURRENT, every file of the version it names, other model files, and the taxonomy."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
                   check=True, capture_output=True, timeout=600)
    wheel = next(tmp_path.glob("callcycle-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    current = (ROOT / "models" / "CURRENT").read_text().strip()
    assert "pipeline/_data/models/CURRENT" in names
    assert "pipeline/_data/labels/taxonomy.toml" in names
    for file in (ROOT / "models" / current).rglob("*"):
        if file.is_file():
            assert f"pipeline/_data/models/{current}/{file.relative_to(ROOT / 'models' / current)}" in names
    others = [p.parent.name for p in (ROOT / "models").glob("*/card.json") if p.parent.name != current
              and json.loads(p.read_text()).get("format", "").startswith("callcycle-model")]
    assert not any(f"/models/{o}/" in n for o in others for n in names), "old versions stay out of the wheel"
    assert "cli/__init__.py" in names
    for shared in (f"encoders/{DEFAULT_ENCODER}/model.onnx", "speaker/campplus_cn_en_common.onnx",
                   "speaker/campplus_cn_en_common.int8.onnx"):
        if (ROOT / "models" / shared).is_file():
            assert f"pipeline/_data/models/{shared}" in names, shared
    # the float32 sentence encoder (45 MB) and the speaker models (28 + 8.8 MB) dominate (wheel 76 MB on
    # 2026-12-04); old versions stay out
    assert wheel.stat().st_size < 90 * 2**20
