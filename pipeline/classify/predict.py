"""Apply the trained stage and talk/action classifiers to texts and to a call's segments."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pipeline.classify.artifacts import Artifact
from pipeline.classify.model import Utterances
from pipeline.schema import ClassifiedSegment, Prediction, Segment

__all__ = ["predict_utterances", "predict_texts", "classify_segments", "apply_neutral_rule"]


def apply_neutral_rule(artifact: Artifact, stage: Prediction, talk_action: Prediction) -> Prediction:
    """The taxonomy's rule: a segment whose stage is the neutral label (``other``) is never action.

    Returns ``talk_action`` unchanged, or relabelled with the non-positive label (probabilities kept).
    """
    label = artifact.taxonomy.talk_action_given_stage(stage.label, talk_action.label)
    return talk_action if label == talk_action.label else Prediction(label, talk_action.probabilities)


def predict_utterances(artifact: Artifact, utterances: Utterances,
                       use_context: bool | None = None) -> dict[str, list[Prediction]]:
    """Predict every task for segments in conversation order (neighbours give context).

    The taxonomy's neutral-stage rule (:func:`apply_neutral_rule`) is applied, so these are the
    labels every caller (scoring, ``callcycle classify``, evaluation) sees.

    Returns:
        task name -> one :class:`Prediction` per segment (label and all label probabilities).
    """
    if not len(utterances):
        return {task.name: [] for task in artifact.taxonomy.tasks}
    vectors = artifact.encoder.encode(list(utterances.texts)) if artifact.encoder is not None else None
    proba = artifact.model.predict_proba(utterances, vectors, use_context=use_context)
    results: dict[str, list[Prediction]] = {}
    for task in artifact.taxonomy.tasks:
        classes = list(artifact.model.classes_[task.name])
        results[task.name] = [
            Prediction(label=classes[int(np.argmax(row))],
                       probabilities={c: float(p) for c, p in zip(classes, row)})
            for row in proba[task.name]
        ]
    stage_task = artifact.taxonomy.by_role("stage")
    ta_task = artifact.taxonomy.by_role("talk_action")
    if stage_task.name in results and ta_task.name in results:
        results[ta_task.name] = [apply_neutral_rule(artifact, s, t)
                                 for s, t in zip(results[stage_task.name], results[ta_task.name])]
    return results


def predict_texts(artifact: Artifact, texts: Sequence[str]) -> dict[str, list[Prediction]]:
    """Predict every task for each text on its own (no neighbours).

    Raises:
        TypeError: ``texts`` is one string (it would be read a character at a time) or holds a non-string.
    """
    if isinstance(texts, str):
        raise TypeError("texts is one string: pass a list of texts, e.g. [text]")
    texts = list(texts)
    bad = [t for t in texts if not isinstance(t, str)]
    if bad:
        raise TypeError(f"every text must be a string, not {type(bad[0]).__name__}")
    return predict_utterances(artifact, Utterances.standalone(texts))


def classify_segments(artifact: Artifact, segments: Sequence[Segment]) -> list[ClassifiedSegment]:
    """Label each segment of a call with the stage-role and talk/action-role tasks.

    Segments are read in time order, so each one is classified with its neighbours (who
    spoke before and after, and what they said). A segment whose stage is the neutral label
    (``other``) is always ``talk``, as the taxonomy defines.
    """
    stage_task = artifact.taxonomy.by_role("stage")
    ta_task = artifact.taxonomy.by_role("talk_action")
    order = sorted(range(len(segments)), key=lambda i: (segments[i].start_s, segments[i].index))
    ordered = [segments[i] for i in order]
    utterances = Utterances(tuple(s.text for s in ordered), tuple(s.call_id for s in ordered),
                            tuple(s.speaker for s in ordered))
    predictions = predict_utterances(artifact, utterances)
    by_position: dict[int, ClassifiedSegment] = {}
    for k, segment in enumerate(ordered):
        stage = predictions[stage_task.name][k]
        by_position[order[k]] = ClassifiedSegment(segment=segment, stage=stage,
                                                  talk_action=predictions[ta_task.name][k])
    return [by_position[i] for i in range(len(segments))]
