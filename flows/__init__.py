"""Prefect flows: thin wrappers that compose ``pipeline`` functions as tasks."""

from __future__ import annotations

__all__ = ["score_flow", "train_flow"]
