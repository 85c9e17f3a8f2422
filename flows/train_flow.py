"""The training flow: load labels -> train and cross-validate -> save artifact -> promote."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from pipeline.classify.artifacts import check_destination, save_artifact
from pipeline.classify.evaluate import PromotionDecision, promote
from pipeline.classify.labels import LabelledRow, Taxonomy, load_labelled, load_taxonomy
from pipeline.classify.train import TrainConfig, TrainResult, train_models
from pipeline.paths import DEFAULT_REALDATA, external_corpora
from pipeline.paths import models_dir as default_models_dir

__all__ = ["train_classifiers", "TrainOutcome"]


class TrainOutcome:
    """Where the artifact went, its card, and the promotion decision."""

    def __init__(self, path: Path, result: TrainResult, decision: PromotionDecision | None) -> None:
        self.path = path
        self.result = result
        self.decision = decision


@task(name="load-labels", cache_policy=NO_CACHE)
def load_task(taxonomy_path: str, data: list[str], external: list[str]) -> tuple[Taxonomy, list[LabelledRow]]:
    """The taxonomy and the labelled rows: ``data`` rows need one label at least, ``external`` rows may have none."""
    taxonomy = load_taxonomy(Path(taxonomy_path))
    rows = load_labelled([Path(p) for p in data], taxonomy, partial=True, at_least_one=True)  # one label will do
    if external:
        rows += load_labelled([Path(p) for p in external], taxonomy, partial=True)
    return taxonomy, rows


@task(name="train", cache_policy=NO_CACHE)
def train_task(rows: list[LabelledRow], taxonomy: Taxonomy, config: TrainConfig,
               version: str | None, models_dir: str, realdata: str | None,
               progress: Callable[[str], None] | None = None) -> TrainResult:
    """Train on ``rows`` (:func:`pipeline.classify.train.train_models`), with the ``realdata`` sets evaluated in
    the card; each status message goes to Prefect's log and to ``progress``."""
    from prefect.logging import get_run_logger

    from pipeline.classify.benchmark import realdata_sets

    logger = get_run_logger()

    def say(message: str) -> None:
        logger.info(message)
        if progress is not None:
            progress(message)

    extra, skipped = realdata_sets(Path(realdata) if realdata else None)
    for reason in skipped:
        say(reason)
    return train_models(rows, taxonomy, config, version, progress=say, models_root=Path(models_dir),
                        extra_sets=extra)


@task(name="save-artifact", cache_policy=NO_CACHE)
def save_task(result: TrainResult, models_dir: str) -> Path:
    """Write the trained artifact as ``models_dir/<version>`` (model, card); its path."""
    return save_artifact(Path(models_dir) / result.card["version"], result.model, result.card,
                         result.card_markdown)


@flow(name="train-classifiers", validate_parameters=False)
def train_classifiers(taxonomy_path: str, data: list[str], models_dir: str | None = None,
                      config: TrainConfig | None = None, version: str | None = None,
                      promote_model: bool = False, force: bool = False, external: list[str] | None = None,
                      realdata: str | None = None, progress: Callable[[str], None] | None = None) -> TrainOutcome:
    """Train every task of the taxonomy on ``data`` (+ partially labelled ``external`` corpora)
    and write a versioned artifact; ``realdata`` names the shared real-text folder evaluated in the card.
    ``progress`` is called with each status message of the training (as well as Prefect's log).

    ``external`` ``None`` reads the project's real-speech corpora (:func:`pipeline.paths.external_corpora`;
    ``[]`` for none) and ``realdata`` ``None`` the default folder (:data:`pipeline.paths.DEFAULT_REALDATA`),
    as ``callcycle train`` does. ``models_dir`` ``None`` is the models root ``callcycle train`` writes to
    (:func:`pipeline.paths.models_dir`), not a ``models`` folder wherever the process runs."""
    if models_dir is None:
        models_dir = str(default_models_dir())
    if external is None:
        external = [str(p) for p in external_corpora()]
    if realdata is None:
        realdata = str(DEFAULT_REALDATA)
    check_destination(Path(models_dir), version)  # before minutes of training, not after
    taxonomy, rows = load_task(taxonomy_path, data, external)
    result = train_task(rows, taxonomy, config or TrainConfig(), version, models_dir, realdata, progress)
    path = save_task(result, models_dir)
    decision = promote(Path(models_dir), path.name, result.holdout, force) if promote_model else None
    return TrainOutcome(path, result, decision)
