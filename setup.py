"""Build hook: ship the classifiers and the taxonomy inside the wheel (``pipeline/_data/``).

The checkout keeps one copy of ``models/`` and ``labels/taxonomy.toml`` (no symlinks, no
duplicates); when a wheel is built they are copied into the package, so an installed
callcycle finds them through ``pipeline.paths`` from any folder. What is copied from
``models/``: ``CURRENT``, the version it names (every file in it, whatever it holds), and
any other entry that is not an artifact version (shared models such as an encoder or a
speaker model). Older artifact versions stay out of the wheel to keep it small.
Editable installs read the checkout directly and copy nothing.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


def _is_artifact(folder: Path) -> bool:
    """A classifier version (its card has a callcycle-model format); shared models have other cards."""
    import json

    card = folder / "card.json"
    if not card.is_file():
        return False
    try:
        return str(json.loads(card.read_text(encoding="utf-8")).get("format", "")).startswith("callcycle-model")
    except (OSError, ValueError):
        return False


def _model_entries(models: Path) -> list[Path]:
    current = (models / "CURRENT").read_text(encoding="utf-8").strip()
    if not current or not (models / current / "card.json").is_file():
        raise SystemExit(f"models/CURRENT names {current!r}, which is not an artifact in models/; fix it first")
    keep: list[Path] = []
    for entry in sorted(models.iterdir()):
        if entry.name.startswith("."):
            continue
        is_version = entry.is_dir() and _is_artifact(entry)
        if not is_version or entry.name == current:
            keep.append(entry)
    return keep


class BuildWithData(build_py):
    """``build_py`` that also copies the shipped models and taxonomy into ``pipeline/_data``."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = Path(self.build_lib) / "pipeline" / "_data"
        shutil.rmtree(target, ignore_errors=True)
        for entry in _model_entries(ROOT / "models"):
            dest = target / "models" / entry.name
            if entry.is_dir():
                shutil.copytree(entry, dest, symlinks=False)
            else:
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(entry, dest)
        (target / "labels").mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / "labels" / "taxonomy.toml", target / "labels" / "taxonomy.toml")


setup(cmdclass={"build_py": BuildWithData})
