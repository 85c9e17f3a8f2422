"""Prefect flows: thin wrappers that compose ``pipeline`` functions as tasks."""

from __future__ import annotations

__all__ = ["score_flow", "train_flow", "RUN_LOGGERS"]

#: Prefect's loggers that name the files of a run (the task's and the flow's): the command line and every
#: process that scores files put :class:`pipeline.display.PrintableLogFilter` on them. Here, not in
#: ``score_flow``, so the CLI reads it without importing Prefect.
RUN_LOGGERS = ("prefect.task_runs", "prefect.flow_runs")
