"""The written rows kept apart in ``labels/held-back/`` stay usable and stay out of training.

They are measured in docs/REALDATA.md and meant for a later retrain, so they must load with the
same validation as ``labels/data/`` and must not clash with its ids or conversation groups.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.classify.labels import load_labelled, load_taxonomy
from pipeline.paths import labels_data_dir

ROOT = Path(__file__).resolve().parents[1]
HELD_BACK = ROOT / "labels" / "held-back"


def _held_back_files() -> list[Path]:
    return sorted(HELD_BACK.glob("*.jsonl"))


@pytest.mark.parametrize("path", _held_back_files(), ids=lambda p: p.name)
def test_held_back_rows_load_like_the_corpus_and_do_not_clash_with_it(path: Path) -> None:
    taxonomy = load_taxonomy(ROOT / "labels" / "taxonomy.toml")
    corpus = load_labelled(sorted((ROOT / "labels" / "data").glob("*.jsonl")), taxonomy)
    rows = load_labelled([path], taxonomy)  # validates labels and fields like the corpus loader
    assert rows and all(set(r.labels) == {"stage", "talk_action"} for r in rows)
    assert not any(r.labels["stage"] == "other" and r.labels["talk_action"] == "action" for r in rows)
    assert not {r.id for r in rows} & {r.id for r in corpus}
    assert not {r.group for r in rows} & {r.group for r in corpus}


def test_training_defaults_to_labels_data_and_the_held_back_folder_is_not_empty(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CALLCYCLE_LABELS", raising=False)
    assert labels_data_dir().resolve() == (ROOT / "labels" / "data").resolve()
    # the parametrised test above has nothing to check if the folder lost its files
    assert _held_back_files()
