"""The scoring flow: discover -> transcribe or parse -> segment -> classify -> score -> write.

Discovery and each file are Prefect tasks over ``pipeline`` functions. Per-file work runs in a
``score_file`` task: in this process for one worker, one Dask task per file on a local
cluster of worker processes (``workers`` > 1) or on an existing Dask cluster
(``dask_address``). Inside it, reading/transcribing is its own task (for retries and the
per-file time limit); segmenting, classifying, scoring and the commit are plain calls, because
every task run costs API round trips (two task runs per file, not four: BENCHMARKS.md). A
file that fails is recorded in ``errors/`` and the batch goes on. Transcription is retried on
unexpected errors (not on bad input, which fails the same way every time) and can be given a
timeout.

Models load once per worker process (``flows.resources``). Writes are idempotent: a finished
call is skipped, and on a disk a call's files are named by its identity and replaced atomically;
on S3 each version is committed once by a create-only marker (a second attempt gets HTTP 412 and
is reported as skipped). So a task that Dask re-runs after a worker died (prefect#15442) cannot
write a call twice.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.futures import as_completed
from prefect.logging import get_run_logger
from prefect.states import Completed
from prefect.task_runners import ThreadPoolTaskRunner

from flows import RUN_LOGGERS, resources
from flows.server_watchdog import guard
from pipeline import objectstore, process
from pipeline.classify.artifacts import resolve_artifact_dir
from pipeline.config import PipelineConfig, RunConfig
from pipeline.display import printable_logging
from pipeline.errors import (
    FileTimeoutError,
    ModelArtifactError,
    OrchestratorLostError,
    OutputError,
    PipelineError,
    ServiceError,
    WorkerCrashError,
)
from pipeline.ingest import discover as ingest
from pipeline.ingest.fingerprints import fingerprints_for_run
from pipeline.paths import DEFAULT_OUT, models_dir
from pipeline.process import CallInput, Outcome
from pipeline.schema import Source
from pipeline.speech.boundaries import load_boundary_model
from pipeline.speech.diarize import check_speaker_model
from pipeline.speech.rolemodel import load_role_model
from pipeline.speech.transcribe import check_asr_model
from pipeline.store import schema as store
from pipeline.store.prune import VanishedInput, retire, vanished_inputs

__all__ = ["RunSummary", "score_calls", "score_file", "run_scoring", "task_runner", "shared_api_url"]


#: (on_result, on_discovered) of the run_scoring call in progress (see score_calls).
_CALLBACKS: ContextVar[tuple[Callable[[Outcome], None] | None, Callable[[int], None] | None] | None] = \
    ContextVar("callcycle_run_callbacks", default=None)


def _current_callbacks() -> tuple[Any, Any] | None:
    # A plain module-level function pickles by reference; the ContextVar itself does not pickle.
    return _CALLBACKS.get()


#: The output folder run_scoring has just prepared (checked, swept, schema files written), so the flow it
#: starts does not do it a second time; a deployment calling score_calls directly finds None and prepares.
_PREPARED: ContextVar[str | None] = ContextVar("callcycle_prepared_output", default=None)


def _prepared_output() -> str | None:
    # read through a function, as _CALLBACKS is: the flow is pickled for Dask tasks, a ContextVar does not pickle
    return _PREPARED.get()


@dataclass(slots=True)
class RunSummary:
    """What a run did, file by file."""

    outcomes: list[Outcome] = field(default_factory=list)
    wall_s: float = 0.0
    out_dir: str = ""
    ignored: list[str] = field(default_factory=list)
    """Files of a type callcycle does not read, found in the input folders (not errors)."""
    empty: list[str] = field(default_factory=list)
    """Input folders and patterns that held no audio or transcript (not errors)."""
    hidden: list[str] = field(default_factory=list)
    """Files whose names start with '.', found in the input folders and left alone (not errors)."""
    folders: list[str] = field(default_factory=list)
    """Hidden sub-folders and symbolic links to folders that the folder walk did not enter (not errors)."""
    formats: list[list[str]] = field(default_factory=list)
    """Inputs of one name in several formats in one folder (each scored as its own call)."""
    vanished: list[VanishedInput] = field(default_factory=list)
    """Stored calls (or failures) of the input folders whose file is gone (deleted or renamed)."""
    retired: int = 0
    """How many of ``vanished`` were moved to ``<out>/retired/`` (``[run] prune``)."""

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == "failed"]


def _retry_unexpected(task: Any, task_run: Any, state: Any) -> bool:
    """Retry only errors that are not a known-bad input or a timeout (those would fail again)."""
    try:
        state.result()
    except (PipelineError, TimeoutError):  # Prefect raises a TimeoutError subclass
        return False
    except Exception:
        return True
    return False


@task(name="discover", cache_policy=NO_CACHE)
def discover_task(inputs: list[str], run: RunConfig | None = None, out_dir: str | None = None,
                  ) -> tuple[list[Source], list[tuple[str, Exception]], ingest.DiscoveryNotes]:
    """Sources, unusable inputs, and what discovery passed over (:class:`~pipeline.ingest.discover.DiscoveryNotes`).

    Inputs unchanged since an earlier run keep their remembered sha256 unless ``run.reuse_fingerprints``
    is off (:mod:`pipeline.ingest.fingerprints`). An ``out_dir`` (folder or ``s3://``) inside an input is not read."""
    run = run or RunConfig()
    notes = ingest.DiscoveryNotes()
    with fingerprints_for_run(run.reuse_fingerprints, run.fingerprint_cache) as cache:
        sources, errors = ingest.discover_inputs(inputs, notes=notes, fingerprints=cache, exclude=out_dir)
    return sources, errors, notes


@task(name="transcribe-or-parse", cache_policy=NO_CACHE, retry_condition_fn=_retry_unexpected)
def read_call_task(source: Source, config: PipelineConfig) -> CallInput:
    """Read one input into turns (:func:`pipeline.process.read_call`): transcribe and diarize audio with this
    worker's models, parse a transcript; the flow gives it the run's time limit and retries."""
    asr = resources.asr_model(config.asr, config.run.threads) if source.kind == "audio" else None
    speaker = resources.speaker_model(config.diarize.model_path) if asr and config.diarize.enabled else None
    # loaded once per worker, and only when a speaker has no role from the sidecar, channels or name
    return process.read_call(source, asr, config, speaker, lambda: resources.role_model(config.roles.model_path))


@task(name="score-file", cache_policy=NO_CACHE)
def score_file(source: Source, config: PipelineConfig, models: str, model_version: str | None,
               out_dir: str, batch: str = "", stamp: store.RunStamp | None = None) -> Outcome:
    """Score one file of ``batch``; failures are recorded and returned as outcomes.

    ``stamp``: the run's versions and settings digest, computed once by the flow (``None``: computed here).

    Raises only :class:`~pipeline.errors.OutputError` (the output folder cannot be written) and
    :class:`~pipeline.errors.ModelArtifactError` (the classifiers cannot be loaded), which stop the batch.
    """
    printable_logging(*RUN_LOGGERS)  # in a Dask worker too: the file names below reach its logs and Prefect's
    logger = get_run_logger()
    stamp = stamp or process.run_stamp(resources.artifact_card(models, model_version), config.asr.model, config)
    with process.scoring_claim(source, stamp, out_dir, config.run.force, batch) as done:
        if done is not None:
            if done.status == "failed":
                logger.warning("%s not scored: %s", source.path, done.message)
            elif done.status == "deferred":
                logger.info("%s", done.message)
            else:
                logger.info("%s: already scored (key %s), %s", source.path, done.call_key, done.status)
            return done
        started = time.perf_counter()
        # an unexpected failure is retried (a transcript's too: the read task is the same); bad input is not
        retries = config.run.retries
        attempts = 1 + retries
        try:
            artifact = resources.artifact(models, model_version)  # loaded once per process
            # only the classifier changed since the call was stored: its stored segments are classified again
            again = process.rescore_stored(source, stamp, out_dir, artifact, config, batch)
            if again is None:
                reader = read_call_task.with_options(retries=retries,
                                                     timeout_seconds=config.run.timeout_s or None)
                call = reader(source, config)
                # scoring and the commit run inside this task: each Prefect task run costs a round trip
                # to the API per state change, which is the largest per-file cost after ASR (BENCHMARKS.md)
                splitter = resources.sentencizer(config.segmentation.unpunctuated_model,
                                                 config.segmentation.unpunctuated_model_path)
                scored = process.score_turns(call, artifact, splitter, config)
            else:
                call, scored = again
            key = process.commit_call(out_dir, source, call, scored, stamp, artifact.taxonomy,
                                      time.perf_counter() - started, config.run.force, batch)
        except Exception as exc:
            logger.warning("%s failed: %s", source.path, exc)
            if isinstance(exc, TimeoutError):
                exc = FileTimeoutError(
                    f"{Path(source.path).name}: reading and transcribing took longer than the per-file limit "
                    f"of {config.run.timeout_s:g} s.",
                    "Raise --timeout (or [run] timeout_s), or split the recording; check the machine is not "
                    "overloaded.")
            if isinstance(exc, PipelineError):  # known-bad input is not retried (see _retry_unexpected)
                attempts = 1
            return process.record_failure(out_dir, source.path, source.sha256, exc, stamp, attempts,
                                          source_id=store.source_identity(source), batch=batch)
        logger.info("%s: scored %d segments, action share %s", source.path, scored.score.n_segments,
                    scored.score.action_share)
        return Outcome(path=source.path, status="scored", call_id=scored.call_id, call_key=key,
                       action_share=scored.score.action_share, audio_s=call.audio_duration_s,
                       restored=again is not None)


# Deployments (flows/serve.py) run the flow with this runner: [run] threads' default number of files at
# once, not Prefect's default pool of several threads; run_scoring picks the runner from the options
# of each run.
@flow(name="score-calls", validate_parameters=False, log_prints=False,
      task_runner=ThreadPoolTaskRunner(max_workers=RunConfig().threads))
def score_calls(inputs: list[str], out_dir: str = str(DEFAULT_OUT), models: str | None = None,
                model_version: str | None = None, config: PipelineConfig | None = None,
                on_result: Callable[[Outcome], None] | None = None,
                on_discovered: Callable[[int], None] | None = None,
                on_checked: Callable[[], None] | None = None) -> RunSummary:
    """Score every call in ``inputs`` into Parquet datasets under ``out_dir``.

    Args:
        inputs: files, folders or glob patterns.
        out_dir: output folder or ``s3://`` prefix (``segments/``, ``calls/``, ``errors/``).
        models: models root (uses ``CURRENT``) or an artifact directory; default: the shipped
            classifiers (see :func:`pipeline.paths.models_dir`).
        model_version: a version inside ``models``.
        config: pipeline options.
        on_result: called with each file's outcome as it completes (progress bars).
        on_discovered: called once with the number of inputs found.

    Files run concurrently on the flow's task runner (see :func:`run_scoring`).
    """
    cfg = config or PipelineConfig()
    models = str(models_dir(models))
    # Callbacks given by run_scoring travel outside the flow's parameters: Prefect sends the flow
    # run context (parameters included) with every Dask task, and a progress bar does not pickle.
    on_result, on_discovered = _current_callbacks() or (on_result, on_discovered)
    started = time.perf_counter()
    missing = ingest.unmatched_inputs(inputs)
    if missing:  # a mistyped path: a usage error before anything is written
        raise ingest.unmatched_inputs_error(missing)
    overlap = ingest.output_over_inputs(inputs, out_dir)
    if overlap is not None:  # the output is an input folder or holds one
        raise overlap
    if ingest.holds_no_inputs(inputs):  # e.g. an empty folder: nothing to score, so nothing is written
        raise ingest.no_inputs_error(inputs)
    if _prepared_output() != str(out_dir):  # fail fast on a read-only, full or misnamed output folder or bucket
        process.prepare_output(out_dir)
    batch = process.new_batch_id()  # an output fault stops this batch's files, in every worker, and no other
    # The model is resolved once per run (models/CURRENT is read now, so a long-lived process picks up a
    # newly promoted model on its next run) and every task gets that version's own folder: rows are
    # stamped with the version that scored them even if CURRENT moves during the run. Fail fast on a
    # missing or tampered model; the tasks load it (in the worker processes, with Dask).
    models, model_version = str(resolve_artifact_dir(Path(models), model_version)), None
    card = resources.artifact_card(models, model_version)
    # a missing or damaged role or sentence-boundary model stops the batch now, not file by file: each is
    # read whole (its checksum, then its weights), since a file edited together with its card's checksum
    # still fails to load
    if cfg.roles.model:
        load_role_model(cfg.roles.model_path)
    if cfg.segmentation.unpunctuated_model:
        load_boundary_model(cfg.segmentation.unpunctuated_model_path)
    check_asr_model(cfg.asr.model)  # so does a speech model that cannot be found (deployments come here)
    if cfg.diarize.enabled:  # and a missing or damaged speaker model (checksum), before any recording is read
        check_speaker_model(cfg.diarize.model_path)
    sources, bad_inputs, notes = discover_task(inputs, cfg.run, str(out_dir))
    if not sources and not bad_inputs:
        raise ingest.no_inputs_error(inputs)
    summary = RunSummary(out_dir=str(out_dir), ignored=notes.ignored, empty=notes.empty, hidden=notes.hidden,
                         folders=notes.folders, formats=notes.formats)
    if on_discovered:
        on_discovered(len(sources) + len(bad_inputs) + len(notes.aliases))

    def done(outcome: Outcome) -> None:
        summary.outcomes.append(outcome)
        if on_result:
            on_result(outcome)

    stamp = process.run_stamp(card, cfg.asr.model, cfg)
    # refused inputs, links, copies, identity clashes and calls already stored at this version are
    # settled here, without a task run each (a nightly re-run of an archive is mostly these);
    # score_file checks again, for runs that overlap
    unique, settled = process.plan_batch(out_dir, sources, bad_inputs, notes, stamp, cfg.run.force, batch)
    for outcome in settled:
        if outcome.status == "failed":
            get_run_logger().warning("%s not scored: %s", outcome.path, outcome.message)
        done(outcome)
    # The speech model is loaded for as many threads as files can run at once here, never more
    # than there are files (one long file keeps all the cores for itself); the largest files go
    # first so that the last one does not run alone while the other threads idle.
    cfg = replace(cfg, run=replace(cfg.run, threads=cfg.run.threads_for(len(unique))))
    unique.sort(key=lambda s: -s.size_bytes)
    futures = {score_file.submit(s, cfg, models, model_version, out_dir, batch, stamp): s for s in unique}
    for future in as_completed(list(futures)):
        try:
            outcome = future.result()
        except (OutputError, ModelArtifactError):
            raise  # every file would fail: the batch stops
        except Exception as exc:  # noqa: BLE001 - e.g. Dask's KilledWorker: this file took its worker down
            source = futures[future]
            if _cluster_lost(exc):  # not this file's fault, and the same for every file left: the batch stops
                # (no count: calls committed by the workers may not have reported back before the loss)
                raise ServiceError(
                    f"The Dask cluster stopped answering during the run ({_first_line(exc)}); the calls the workers "
                    "committed before that are kept.",
                    "Restart the scheduler and its workers (or run without --dask-address) and run the same "
                    "command again: finished calls are skipped.") from exc
            crash = WorkerCrashError(
                f"{Path(source.path).name}: scoring it stopped its worker process ({type(exc).__name__}: "
                f"{str(exc)[:200]}).",
                "Check the file (a decoder crash or running out of memory kills the process); the other files "
                "of the batch were scored.")
            outcome = process.record_failure(out_dir, source.path, source.sha256, crash, stamp,
                                             source_id=store.source_identity(source), batch=batch)
        done(outcome)
    # stored calls whose input file is gone from these folders (deleted or renamed): counted, and with
    # [run] prune moved aside, so the figures cover the archive as it is now
    found = {store.source_identity(s) for s in sources} | set(notes.identities.values())
    summary.vanished = vanished_inputs(out_dir, inputs, found)
    if cfg.run.prune and summary.vanished:
        summary.retired = retire(out_dir, summary.vanished)
    summary.wall_s = time.perf_counter() - started
    return _final_state(summary, out_dir)


#: The name of a finished flow run in which some inputs failed (its type stays COMPLETED).
COMPLETED_WITH_FAILURES = "Completed with failures"


def _final_state(summary: RunSummary, out_dir: str) -> Any:
    """The run's result; where inputs failed, as a ``Completed with failures`` state whose message
    counts them, so a Prefect server's UI and automations see more than a plain "Completed" (the
    run's type stays COMPLETED: the other files were scored and the caller still gets the summary)."""
    failed = summary.count("failed")
    if not failed:
        return summary
    message = (f"{failed} of {len(summary.outcomes)} inputs failed; `callcycle summary {out_dir}` lists why "
               f"and what to do")
    get_run_logger().warning(message)
    return Completed(name=COMPLETED_WITH_FAILURES, message=message, data=summary)


@contextmanager
def shared_api_url() -> Iterator[str]:
    """The Prefect API every worker process should report to, started once if none is configured.

    With ``PREFECT_API_URL`` set (a ``prefect server start`` or Prefect Cloud) that server is used
    and nothing starts. Otherwise one temporary API server is started here, in the parent, and
    exported in ``PREFECT_API_URL`` for the duration, so Dask worker processes spawned meanwhile
    report to it instead of each starting its own (~8-10 s each). A watchdog process
    (:mod:`flows.server_watchdog`) stops that server if this process is killed before it can.
    """
    from prefect.settings import get_current_settings

    configured = get_current_settings().api.url
    if configured:
        yield str(configured)
        return
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()
    server.start()
    if server.server_process is not None:  # a run killed outright must not leave the server running
        guard(server.server_process.pid)
    previous = os.environ.get("PREFECT_API_URL")
    os.environ["PREFECT_API_URL"] = server.api_url
    try:
        yield server.api_url
    finally:
        if previous is None:
            os.environ.pop("PREFECT_API_URL", None)
        else:
            os.environ["PREFECT_API_URL"] = previous


def task_runner(workers: int = 1, dask_address: str | None = None, api_url: str | None = None,
                threads: int = 1) -> Any:
    """The task runner for ``workers`` processes.

    One worker: ``threads`` threads in this process (``[run] threads``), sharing one loaded speech
    model. More: a local Dask cluster of ``workers`` processes with one thread each, the cores split
    evenly between them. ``dask_address``: an existing Dask scheduler (``tcp://host:8786``); its
    workers need ``PREFECT_API_URL`` pointing at a Prefect server.
    """
    if dask_address is None and workers <= 1:
        return ThreadPoolTaskRunner(max_workers=max(1, threads))
    from prefect_dask import DaskTaskRunner

    if dask_address:
        return DaskTaskRunner(address=dask_address)
    env = {"PREFECT_API_URL": api_url} if api_url else {}
    # Each worker's CTranslate2 gets an even share of the cores unless cpu_threads says otherwise.
    env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // workers))
    return DaskTaskRunner(cluster_kwargs={"n_workers": workers, "threads_per_worker": 1, "processes": True,
                                          "dashboard_address": None, "env": env})


def check_dask_client(dask_address: str | None) -> None:
    """Raise :class:`~pipeline.errors.ServiceError` when this process already has a current Dask client
    for another scheduler: prefect-dask's task runner sends the files to that client's cluster whatever
    address or worker count it is given (a notebook with a ``Client`` open, say)."""
    try:
        from distributed.client import default_client

        client = default_client()
    except (ImportError, ValueError):  # no Dask, or no current client
        return
    address = getattr(client.scheduler, "address", None)
    if dask_address and address == dask_address:
        return
    target = f"the cluster at {dask_address}" if dask_address else "a local cluster"
    raise ServiceError(f"This process already has a Dask client connected to {address or 'a scheduler'}; "
                       f"prefect-dask would send the files there, not to {target}.",
                       "Close that client first (client.close()), or pass its address as the Dask address.")


def check_dask_scheduler(dask_address: str, timeout_s: float = 10.0) -> None:
    """Raise :class:`~pipeline.errors.ServiceError` before any work when no Dask scheduler answers at
    ``dask_address`` (prefect-dask would try for 30 s and leave an output folder behind) or when it has
    no workers (the files would wait for ever)."""
    from distributed import Client
    from distributed.comm.addressing import parse_address, parse_host_port
    from distributed.comm.registry import backends

    try:  # a malformed address is refused here: a Client built on one waits 20 s in its finaliser
        scheme, location = parse_address(dask_address)
        if scheme not in backends:
            raise ValueError(f"{scheme}:// is not a Dask protocol; use one of {', '.join(sorted(backends))}")
        if scheme in ("tcp", "tls", "ws", "wss"):  # network addresses (inproc:// ones are not host:port)
            parse_host_port(location)
    except ValueError as exc:
        raise ServiceError(f"{dask_address!r} is not a Dask scheduler address ({exc}).",
                           "Pass the address the scheduler prints, such as tcp://10.0.0.5:8786.") from exc
    try:
        with Client(dask_address, timeout=timeout_s, set_as_default=False) as client:
            workers = client.scheduler_info().get("workers", {})
            apis = client.run(os.getenv, "PREFECT_API_URL") if workers else {}
    except (OSError, TimeoutError, ValueError) as exc:
        raise ServiceError(f"No Dask scheduler answers at {dask_address} ({exc}).",
                           "Start it (`dask scheduler`, then `dask worker ADDRESS` on each machine), or check "
                           "the address and port.") from exc
    if not workers:
        raise ServiceError(f"The Dask scheduler at {dask_address} has no workers: the files would wait for ever.",
                           "Start workers (`dask worker ADDRESS`; they need PREFECT_API_URL set to a Prefect "
                           "server), then run again.")
    unset = sorted(worker for worker, url in apis.items() if not url)
    if unset:  # works, but each such worker process starts a Prefect API of its own and keeps it
        logging.getLogger("callcycle").warning(
            "%d of the %d Dask worker processes at %s have no PREFECT_API_URL: each starts a temporary Prefect API "
            "of its own (about 220 MB, living as long as the worker) and this run's task logs are not kept; start "
            "the workers with PREFECT_API_URL set to your Prefect server", len(unset), len(apis), dask_address)


def check_prefect_api(timeout_s: float = 5.0) -> None:
    """Raise :class:`~pipeline.errors.ServiceError` when ``PREFECT_API_URL`` names a server that does
    not answer its health check (nothing to do when none is configured: a temporary one starts)."""
    from prefect.settings import get_current_settings

    url = get_current_settings().api.url
    if not url:
        return
    import httpx

    try:
        httpx.get(f"{str(url).rstrip('/')}/health", timeout=timeout_s).raise_for_status()
    except httpx.HTTPError as exc:
        raise ServiceError(
            f"The Prefect server at {url} (PREFECT_API_URL) does not answer ({type(exc).__name__}: {exc}).",
            "Start it (`prefect server start`), fix PREFECT_API_URL, or unset it to let callcycle start a "
            "temporary one; nothing was scored or written.") from exc


def _absolute(location: str) -> str:
    """A local path made absolute (a remote Dask worker has another working folder); URIs as they are."""
    return location if objectstore.is_uri(location) else str(Path(location).absolute())


def run_scoring(inputs: list[str], *, out_dir: str = str(DEFAULT_OUT), models: str | None = None,
                model_version: str | None = None, config: PipelineConfig | None = None,
                workers: int = 1, dask_address: str | None = None,
                on_result: Callable[[Outcome], None] | None = None,
                on_discovered: Callable[[int], None] | None = None,
                on_checked: Callable[[], None] | None = None) -> RunSummary:
    """Run :func:`score_calls` with ``workers`` files in flight at once (see :func:`task_runner`).

    A configured Prefect server that does not answer is one clear
    :class:`~pipeline.errors.ServiceError` before any work. With ``dask_address`` local input and
    output paths are made absolute (the cluster's workers have their own working folders; they must
    see the same paths, e.g. a shared mount). The output folder and the model are checked first,
    before Prefect starts (whose temporary API takes seconds), so a read-only, full or misnamed
    ``out_dir`` is one clear
    :class:`~pipeline.errors.OutputError` and a missing, tampered or mis-pointed model one clear
    :class:`~pipeline.errors.ModelArtifactError`, at once. ``on_checked`` is called once those checks
    pass, before Prefect starts: a progress display shown from then on is never left above a setup error.
    """
    check_prefect_api()
    if dask_address or workers > 1:
        check_dask_client(dask_address)
    if dask_address:  # the cluster's workers resolve paths in their own working folder
        check_dask_scheduler(dask_address)
        inputs, out_dir = [_absolute(i) for i in inputs], _absolute(out_dir)
    # the models first, so a mistyped one leaves no output folder behind: resolved here (CURRENT read
    # now) and checked once (score_calls gets the version's folder, whose check it finds in resources'
    # cache); a speech model that cannot be found would fail every audio file
    models, model_version = str(resolve_artifact_dir(models_dir(models), model_version)), None
    resources.artifact_card(models, model_version)
    cfg = config or PipelineConfig()
    check_asr_model(cfg.asr.model)
    process.prepare_output(out_dir)
    if on_checked:
        on_checked()
    local = dask_address is None and workers <= 1
    if not local:  # a Dask worker process takes one file at a time
        cfg = replace(cfg, run=replace(cfg.run, threads=1))
    kwargs = {"inputs": inputs, "out_dir": out_dir, "models": models, "model_version": model_version,
              "config": cfg}
    settled: list[Outcome] = []

    def collect(outcome: Outcome) -> None:
        settled.append(outcome)
        if on_result:
            on_result(outcome)

    token = _CALLBACKS.set((collect, on_discovered))
    prepared = _PREPARED.set(str(out_dir))
    try:
        with shared_api_url() as api_url:
            runner = task_runner(1, threads=cfg.run.threads) if local else task_runner(workers, dask_address, api_url)
            try:
                return score_calls.with_options(task_runner=runner)(**kwargs)
            except Exception as exc:
                if not _api_unreachable(exc):
                    raise
                scored = sum(o.status == "scored" for o in settled)
                raise OrchestratorLostError(
                    f"The Prefect API at {api_url} stopped answering during the run ({_first_line(exc)}); "
                    f"{len(settled)} input(s) were settled before that, {scored} of them scored and committed, "
                    "and everything committed is kept. The run's record on that server is incomplete.",
                    "Run the same command again once the server answers (`prefect server start`, or unset "
                    "PREFECT_API_URL): finished calls are skipped.") from exc
    finally:
        _CALLBACKS.reset(token)
        _PREPARED.reset(prepared)


def _cluster_lost(exc: BaseException) -> bool:
    """Whether a file's future failed because the Dask cluster went away (its scheduler died or the connection
    to it broke: every future left is cancelled), not because the file took its worker down (KilledWorker)."""
    import concurrent.futures

    return isinstance(exc, concurrent.futures.CancelledError) or type(exc).__name__ == "CommClosedError"


def _api_unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) is a failure to reach an HTTP server: the Prefect API."""
    import httpx

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, httpx.TransportError):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
