"""The fine-tuned sentence encoder never saw a held-out row: its training rows are rebuilt here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

from pipeline.classify.labels import is_holdout
from pipeline.config import DEFAULT_ENCODER


def test_finetuning_rows_are_training_series_hand_labels_only(tmp_path: Path) -> None:
    info = json.loads((ROOT / "models" / "encoders" / DEFAULT_ENCODER / "encoder.json").read_text())
    # the shipped encoder learned from rounds 1-3 (shards 1-14); the corpus file now also holds round 5
    shards = info["fine_tuned"]["data"].get("hand_shards")
    out = tmp_path / "ami-train.jsonl"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "finetune_encoder.py"), "prepare", str(out),
                    *(["--hand-shards", shards] if shards else [])],
                   check=True, capture_output=True, text=True, cwd=tmp_path)
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert rows and all(r["id"].startswith("ami-") for r in rows)
    assert not any(is_holdout(r["group"]) for r in rows), "a held-out meeting series reached fine-tuning"
    assert {r["talk_action"] for r in rows} == {"talk", "action"}
    # the shipped encoder was fine-tuned on exactly these rows (count recorded at fine-tuning time)
    assert info["fine_tuned"]["data"]["rows"] == len(rows)
