"""Small models shipped as data beside the classifiers (``models/roles/``, ``models/boundaries/``): reading
their card and model file, with the file's checksum checked against the card, before anything is parsed.

Each such folder holds ``card.json`` (a ``format`` string and the model file's ``sha256``) and one model
file of plain JSON. A missing folder, another model's card or a damaged file is one clear
:class:`~pipeline.errors.PipelineError` with what to do.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pipeline.errors import PipelineError

__all__ = ["checked_model_files", "card_checksum", "write_model_files"]


def checked_model_files(folder: Path, model_file: str, fmt: str, what: str, hint: str,
                        step: str) -> tuple[dict[str, Any], bytes]:
    """``(card, model file bytes)`` of the model in ``folder``, the bytes matching the card's sha256.

    Args:
        folder: the model's folder.
        model_file: the model file's name in it.
        fmt: the ``format`` its card must carry.
        what: the model's name in messages ("role model").
        hint: what to do, for every error.
        step: the pipeline step the error belongs to.

    Raises:
        PipelineError: the files are missing or unreadable, the card is another format, or the checksum differs.
    """
    try:
        card = json.loads((folder / "card.json").read_text(encoding="utf-8"))
        raw = (folder / model_file).read_bytes()
    except (OSError, ValueError) as exc:
        raise PipelineError(f"Cannot read the {what} in {folder}: {exc}.", hint, step=step) from exc
    if not isinstance(card, dict) or card.get("format") != fmt:
        found = card.get("format") if isinstance(card, dict) else type(card).__name__
        raise PipelineError(f"{folder} is not a {what} (format {found!r}, expected {fmt}).", hint, step=step)
    if hashlib.sha256(raw).hexdigest() != card.get("sha256"):
        raise PipelineError(f"The {what} {folder / model_file} does not match the checksum in its card.", hint,
                            step=step)
    return card, raw


def write_model_files(directory: Path, model_file: str, fmt: str, data: bytes, card: dict[str, Any]) -> Path:
    """Write ``data`` as ``directory/model_file`` and ``card.json`` beside it (``card`` with the format, the file's
    name and its sha256 first), each atomically; the counterpart of :func:`checked_model_files`.

    Returns the model file's path.
    """
    from pipeline.atomic import write_bytes_atomic

    directory.mkdir(parents=True, exist_ok=True)
    path = directory / model_file
    write_bytes_atomic(path, data)
    full = {"format": fmt, "file": model_file, "sha256": hashlib.sha256(data).hexdigest(), **card}
    write_bytes_atomic(directory / "card.json", (json.dumps(full, indent=2) + "\n").encode("utf-8"))
    return path


def card_checksum(folder: Path) -> str:
    """The model file's sha256 as its card records it (the card is read; the model file is not hashed).

    What a call's version key uses to tell one trained model from another: cheap enough for every file of a
    batch, since :func:`checked_model_files` has already checked the file against this card at the start.
    A missing or unreadable card gives ``"missing"``; loading the model then fails with its own message.
    """
    try:
        card = json.loads((folder / "card.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "missing"
    return str(card.get("sha256", "missing")) if isinstance(card, dict) else "missing"
