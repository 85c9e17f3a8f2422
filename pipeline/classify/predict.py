"""Apply the trained stage and talk/action classifiers to texts and segments."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pipeline.classify.artifacts import Artifact
from pipeline.schema import ClassifiedSegment, Prediction, Segment

__all__ = ["predict_texts", "classify_segments"]


def predict_texts(artifact: Artifact, texts: Sequence[str]) -> dict[str, list[Prediction]]:
    """Predict every task of the artifact for each text.

    Returns:
        task name -> one :class:`Prediction` per text (label and all label probabilities).
    """
    results: dict[str, list[Prediction]] = {}
    if not texts:
        return {task.name: [] for task in artifact.taxonomy.tasks}
    for task in artifact.taxonomy.tasks:
        model = artifact.models[task.name]
        proba = np.asarray(model.predict_proba(list(texts)))
        classes = [str(c) for c in model.classes_]
        results[task.name] = [
            Prediction(label=classes[int(np.argmax(row))],
                       probabilities={c: float(p) for c, p in zip(classes, row)})
            for row in proba
        ]
    return results


def classify_segments(artifact: Artifact, segments: Sequence[Segment]) -> list[ClassifiedSegment]:
    """Label each segment with the stage-role and talk/action-role tasks.

    A segment whose stage is the neutral label (``other``) is always ``talk``, as the
    taxonomy defines.
    """
    stage_task = artifact.taxonomy.by_role("stage")
    ta_task = artifact.taxonomy.by_role("talk_action")
    predictions = predict_texts(artifact, [s.text for s in segments])
    talk_label = next(lbl for lbl in ta_task.labels if lbl != ta_task.positive)
    out: list[ClassifiedSegment] = []
    for i, segment in enumerate(segments):
        stage = predictions[stage_task.name][i]
        talk_action = predictions[ta_task.name][i]
        if stage_task.neutral is not None and stage.label == stage_task.neutral:
            talk_action = Prediction(label=talk_label, probabilities=talk_action.probabilities)
        out.append(ClassifiedSegment(segment=segment, stage=stage, talk_action=talk_action))
    return out
