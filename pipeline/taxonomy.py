"""The taxonomy as data: tasks, their labels and definitions, read from ``labels/taxonomy.toml``.

Code reads label sets from here, so a team can swap in another taxonomy without code changes. Every
stage that handles labels (classify, score, store, report) imports it from this early module.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import TaxonomyError

__all__ = ["Task", "Taxonomy", "load_taxonomy"]


@dataclass(frozen=True, slots=True)
class Task:
    """One classification task.

    Attributes:
        name: column name of the task in labelled data (``stage``).
        role: ``stage`` or ``talk_action``: what the call scores use it for.
        labels: the label set, in display order.
        definitions: label -> definition text.
        positive: for the talk/action role, the label that counts as doing work.
        neutral: for the stage role, the label excluded from action share.
    """

    name: str
    role: str
    labels: tuple[str, ...]
    definitions: dict[str, str] = field(default_factory=dict)
    positive: str | None = None
    neutral: str | None = None

    def label_for(self, value: Any) -> str | None:
        """The label ``value`` means: itself, or the one label it matches in another case or with spaces
        around it ("Action", " ACT "); ``None`` when it means none (or more than one)."""
        if value in self.labels:
            return str(value)
        folded = [label for label in self.labels if label.casefold() == str(value).strip().casefold()]
        return folded[0] if len(folded) == 1 else None


@dataclass(frozen=True, slots=True)
class Taxonomy:
    """A named, versioned set of tasks."""

    name: str
    version: str
    tasks: tuple[Task, ...]

    def task(self, name: str) -> Task:
        for task in self.tasks:
            if task.name == name:
                return task
        raise TaxonomyError(f"The taxonomy has no task {name!r}.",
                            f"Tasks: {[t.name for t in self.tasks]}.")

    def by_role(self, role: str) -> Task:
        for task in self.tasks:
            if task.role == role:
                return task
        raise TaxonomyError(f"The taxonomy has no task with role {role!r}.",
                            "Give one task role = 'stage' and one role = 'talk_action'.")

    def talk_action_given_stage(self, stage_label: str, talk_action_label: str) -> str:
        """The taxonomy's rule: a segment whose stage is the neutral label (``other``) is never
        action. Returns ``talk_action_label``, or the non-positive label when the rule applies."""
        stage_task = self.by_role("stage")
        ta_task = self.by_role("talk_action")
        if stage_task.neutral is not None and stage_label == stage_task.neutral:
            return next(lbl for lbl in ta_task.labels if lbl != ta_task.positive)
        return talk_action_label


def load_taxonomy(path: Path) -> Taxonomy:
    """Read and check a taxonomy TOML file.

    Raises:
        TaxonomyError: missing file, bad TOML, or a task without labels or roles.
    """
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise TaxonomyError(f"Taxonomy file {path} not found.",
                            "Pass --taxonomy with the path of a taxonomy TOML file.") from exc
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise TaxonomyError(f"Cannot read taxonomy {path}: {exc}.", "Fix the TOML syntax.") from exc
    raw_tasks = data.get("tasks")
    if not isinstance(raw_tasks, dict) or not raw_tasks:
        raise TaxonomyError(f"{path}: no [tasks.<name>] tables.", "Define at least one task with labels.")
    tasks: list[Task] = []
    for name, spec in raw_tasks.items():
        labels = spec.get("labels") if isinstance(spec, dict) else None
        if not isinstance(labels, list) or len(labels) < 2 or not all(isinstance(x, str) for x in labels):
            raise TaxonomyError(f"{path}: task {name!r} needs a 'labels' list of at least two strings.",
                                "Example: labels = [\"align\", \"act\", \"adjust\", \"other\"]")
        if len(set(labels)) != len(labels):
            raise TaxonomyError(f"{path}: task {name!r} repeats a label.", "Make every label unique.")
        role = spec.get("role", name)
        positive, neutral = spec.get("positive"), spec.get("neutral")
        for key, value in (("positive", positive), ("neutral", neutral)):
            if value is not None and value not in labels:
                raise TaxonomyError(f"{path}: task {name!r}: {key} = {value!r} is not one of its labels.",
                                    f"Use one of {labels}.")
        if role == "talk_action" and positive is None:
            raise TaxonomyError(f"{path}: task {name!r} has role talk_action but no 'positive' label.",
                                "Name the label that counts as action, e.g. positive = \"action\".")
        tasks.append(Task(name=name, role=role, labels=tuple(labels),
                          definitions=dict(spec.get("definitions", {})), positive=positive,
                          neutral=neutral))
    return Taxonomy(name=str(data.get("name", Path(path).stem)), version=str(data.get("version", "1")),
                    tasks=tuple(tasks))
