"""Who spoke when in a mono recording, offline and without torch.

Silero VAD (bundled with faster-whisper) finds speech; speech is cut into short
overlapping windows; each window gets a CAM++ speaker embedding from an ONNX model in
``models/speaker/`` run on onnxruntime (features from :mod:`pipeline.speech.fbank`);
spectral clustering of the embeddings gives the speakers — their number estimated from
the eigengap (1 to ``max_speakers``) or fixed by ``n_speakers`` — and overlapping
window votes give speaker segments at 10 ms resolution. Words are then given to the
speaker whose segments they overlap most (:func:`assign_words`).

Long files are decoded and embedded block by block; at most ``max_cluster_windows``
embeddings are clustered together and the rest join the nearest centroid, so memory
stays bounded however long the call is.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.config import DiarizeOptions
from pipeline.errors import PipelineError
from pipeline.ingest.audio import SAMPLE_RATE, iter_audio_blocks
from pipeline.speech.fbank import FbankOptions, compute_fbank, n_frames

__all__ = [
    "DiarizeOptions",
    "SpeakerModel",
    "SpeakerSegment",
    "Diarization",
    "default_model_path",
    "load_speaker_model",
    "detect_speech",
    "speech_windows",
    "embed_windows",
    "cluster_embeddings",
    "diarize_audio",
    "diarize_file",
    "assign_words",
]

logger = logging.getLogger("callcycle.diarize")

_FBANK = FbankOptions()
_STEP_S = _FBANK.frame_shift_ms / 1000.0
#: Speech regions shorter than this are not embedded (they take a neighbour's speaker).
_MIN_REGION_S = 0.2
#: Speaker runs shorter than this inside a speech region are merged into a neighbour.
_MIN_RUN_S = 0.3


@dataclass(frozen=True, slots=True)
class SpeakerModel:
    """A loaded speaker-embedding model.

    Attributes:
        path: the ONNX file.
        session: the onnxruntime ``InferenceSession``.
        dim: embedding size.
    """

    path: Path
    session: Any
    dim: int


@dataclass(frozen=True, slots=True)
class SpeakerSegment:
    """A stretch of speech by one speaker (``S1``, ``S2`` ... in order of first speech)."""

    speaker: str
    start_s: float
    end_s: float


@dataclass(frozen=True, slots=True)
class Diarization:
    """Result of :func:`diarize_audio` / :func:`diarize_file`.

    Attributes:
        segments: speaker segments in time order (no overlaps).
        speakers: speaker labels in order of first speech.
        duration_s: length of the audio.
        n_windows: number of embedded windows.
        elapsed_s: wall time spent.
    """

    segments: tuple[SpeakerSegment, ...]
    speakers: tuple[str, ...]
    duration_s: float
    n_windows: int
    elapsed_s: float


def default_model_path() -> Path:
    """The shipped CAM++ ONNX model: ``speaker/campplus_cn_en_common.onnx`` in the packaged models
    (``pipeline/_data/models``, copied there when a wheel is built) or the checkout's ``models/``."""
    from pipeline import paths

    name = Path("speaker") / "campplus_cn_en_common.onnx"
    for root in (paths.PACKAGE_DATA / "models", paths._CHECKOUT / "models"):
        if (root / name).is_file():
            return root / name
    return paths.PACKAGE_DATA / "models" / name


def load_speaker_model(path: str | Path | None = None, *, threads: int = 0) -> SpeakerModel:
    """Open the speaker-embedding ONNX model (once per worker).

    Raises:
        PipelineError: the file is missing or onnxruntime cannot load it.
    """
    import onnxruntime as ort

    model_path = Path(path) if path else default_model_path()
    if not model_path.is_file():
        raise PipelineError(f"Speaker model not found: {model_path}.",
                            "Restore models/speaker/ from the repository, or run scripts/export_speaker_model.py "
                            "(see models/speaker/README.md); or turn diarization off with --no-diarize.",
                            step="diarize")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        raise PipelineError(f"Cannot load speaker model {model_path}: {exc}.",
                            "Restore the file from the repository (its sha256 is in models/speaker/card.json).",
                            step="diarize") from exc
    dim = 192
    card = model_path.with_name("card.json")
    if card.is_file():
        dim = int(json.loads(card.read_text(encoding="utf-8")).get("embedding_dim", dim))
    return SpeakerModel(path=model_path, session=session, dim=dim)


def detect_speech(samples: np.ndarray, options: DiarizeOptions | None = None) -> list[tuple[float, float]]:
    """Speech regions ``(start_s, end_s)`` of a 16 kHz mono signal, from faster-whisper's Silero VAD."""
    options = options or DiarizeOptions()
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    vad = VadOptions(threshold=options.vad_threshold, min_speech_duration_ms=150,
                     min_silence_duration_ms=options.min_silence_ms, speech_pad_ms=60)
    stamps = get_speech_timestamps(np.ascontiguousarray(samples, dtype=np.float32), vad)
    return [(s["start"] / SAMPLE_RATE, s["end"] / SAMPLE_RATE) for s in stamps]


def speech_windows(regions: Sequence[tuple[float, float]],
                   options: DiarizeOptions | None = None) -> list[tuple[float, float]]:
    """Windows of at most ``window_s`` every ``hop_s`` over each region; the last one ends with it."""
    options = options or DiarizeOptions()
    windows: list[tuple[float, float]] = []
    for start, end in regions:
        length = end - start
        if length < _MIN_REGION_S:
            continue
        if length <= options.window_s:
            windows.append((start, end))
            continue
        n = int(np.floor((length - options.window_s) / options.hop_s)) + 1
        for i in range(n):
            windows.append((start + i * options.hop_s, start + i * options.hop_s + options.window_s))
        if windows[-1][1] < end - 1e-6:
            windows.append((end - options.window_s, end))
    return windows


def embed_windows(model: SpeakerModel, samples: np.ndarray, windows: Sequence[tuple[float, float]],
                  *, offset_s: float = 0.0, batch_size: int = 32) -> np.ndarray:
    """L2-normalised speaker embeddings (len(windows), dim) of windows of a 16 kHz signal.

    Args:
        model: from :func:`load_speaker_model`.
        samples: the signal; window times are relative to ``offset_s``.
        windows: ``(start_s, end_s)`` in call time.
        offset_s: call time of ``samples[0]``.
        batch_size: windows of equal length are run together, this many at a time.
    """
    feats: list[np.ndarray] = []
    for start_s, end_s in windows:
        a = max(0, int(round((start_s - offset_s) * SAMPLE_RATE)))
        b = min(samples.shape[0], int(round((end_s - offset_s) * SAMPLE_RATE)))
        chunk = samples[a:b]
        if n_frames(chunk.shape[0], _FBANK) < 10:  # pad a very short window symmetrically with context
            pad = (int(0.12 * SAMPLE_RATE) - chunk.shape[0]) // 2 + 1
            chunk = samples[max(0, a - pad) : b + pad]
        fb = compute_fbank(chunk, _FBANK)
        feats.append(fb - fb.mean(axis=0, keepdims=True))
    out = np.zeros((len(feats), model.dim), dtype=np.float32)
    by_length: dict[int, list[int]] = {}
    for i, f in enumerate(feats):
        by_length.setdefault(f.shape[0], []).append(i)
    for length, idx in by_length.items():
        if length == 0:
            continue
        for k in range(0, len(idx), batch_size):
            part = idx[k : k + batch_size]
            batch = np.stack([feats[i] for i in part]).astype(np.float32)
            out[part] = model.session.run(["embedding"], {"feats": batch})[0]
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.maximum(norms, 1e-8)


def _spectral_labels(x: np.ndarray, n_speakers: int | None, max_speakers: int, random_state: int) -> np.ndarray:
    """Spectral clustering of unit vectors: pruned cosine affinity, Laplacian, eigengap, k-means."""
    from scipy.linalg import eigh
    from sklearn.cluster import KMeans

    n = x.shape[0]
    sim = np.clip(x @ x.T, 0.0, 1.0)
    keep = min(n - 1, max(6, int(round(0.05 * n))))  # strongest neighbours per row
    threshold = -np.sort(-sim, axis=1)[:, keep][:, None]
    affinity = np.where(sim >= threshold, sim, 0.0)
    affinity = 0.5 * (affinity + affinity.T)
    np.fill_diagonal(affinity, 0.0)
    degree = affinity.sum(axis=1)
    laplacian = np.diag(degree) - affinity
    top = min(n - 1, max_speakers + 1)
    values, vectors = eigh(laplacian, subset_by_index=[0, top])
    if n_speakers is None:
        gaps = np.diff(values[: max_speakers + 1])
        k = int(np.argmax(gaps)) + 1
    else:
        k = n_speakers
    k = max(1, min(k, n))
    if k == 1:
        return np.zeros(n, dtype=int)
    spectral = vectors[:, :k]
    return KMeans(n_clusters=k, n_init=10, random_state=random_state).fit_predict(spectral)


def _centroids(x: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ids = np.unique(labels)
    cents = np.stack([x[labels == c].mean(axis=0) for c in ids])
    return ids, cents / np.maximum(np.linalg.norm(cents, axis=1, keepdims=True), 1e-8)


def _merge_similar(x: np.ndarray, labels: np.ndarray, threshold: float, min_size: int) -> np.ndarray:
    """Absorb tiny clusters, then merge clusters whose centroids are closer than ``threshold``."""
    labels = labels.copy()
    while True:
        ids, cents = _centroids(x, labels)
        if len(ids) <= 1:
            return labels
        sizes = np.array([(labels == c).sum() for c in ids])
        small = int(np.argmin(sizes))
        if sizes[small] < min_size:
            sims = cents @ cents[small]
            sims[small] = -np.inf
            labels[labels == ids[small]] = ids[int(np.argmax(sims))]
            continue
        sims = cents @ cents.T
        np.fill_diagonal(sims, -np.inf)
        i, j = np.unravel_index(int(np.argmax(sims)), sims.shape)
        if sims[i, j] < threshold:
            return labels
        labels[labels == ids[j]] = ids[i]


def cluster_embeddings(embeddings: np.ndarray, options: DiarizeOptions | None = None) -> np.ndarray:
    """Cluster unit-length embeddings into speakers; returns one integer label per row.

    With more than ``max_cluster_windows`` rows an evenly spaced subsample is clustered
    and every row then joins the nearest cluster centroid.
    """
    options = options or DiarizeOptions()
    n = embeddings.shape[0]
    if n == 0:
        return np.zeros(0, dtype=int)
    if n < 4:
        return np.zeros(n, dtype=int) if options.n_speakers in (None, 1) else np.arange(n) % options.n_speakers
    step = int(np.ceil(n / options.max_cluster_windows))
    sample = embeddings[::step]
    labels = _spectral_labels(sample, options.n_speakers, options.max_speakers, options.random_state)
    if options.n_speakers is None:
        labels = _merge_similar(sample, labels, options.merge_threshold, min_size=max(2, int(0.02 * len(sample))))
    ids, cents = _centroids(sample, labels)
    if step == 1:
        return labels
    return ids[np.argmax(embeddings @ cents.T, axis=1)]


def _segments_from_votes(regions: Sequence[tuple[float, float]], windows: Sequence[tuple[float, float]],
                         labels: np.ndarray, embeddings: np.ndarray) -> list[tuple[int, float, float]]:
    """Per 10 ms step of each speech region, the label of the windows covering it (centre-weighted)."""
    out: list[tuple[int, float, float]] = []
    if len(windows) == 0:
        return out
    ids = np.unique(labels)
    index = {c: i for i, c in enumerate(ids)}
    _, cents = _centroids(embeddings, labels)
    starts = np.array([w[0] for w in windows])
    ends = np.array([w[1] for w in windows])
    for r_start, r_end in regions:
        steps = max(1, int(round((r_end - r_start) / _STEP_S)))
        t = r_start + (np.arange(steps) + 0.5) * _STEP_S
        votes = np.zeros((steps, len(ids)))
        cover = np.nonzero((ends > r_start) & (starts < r_end))[0]
        if cover.size == 0:  # a short region: nearest window's speaker
            mid = 0.5 * (r_start + r_end)
            nearest = int(np.argmin(np.minimum(np.abs(starts - mid), np.abs(ends - mid))))
            cover = np.array([nearest])
            votes[:, index[labels[nearest]]] = 1.0
        else:
            for w in cover:
                inside = (t >= starts[w]) & (t < ends[w])
                half = 0.5 * (ends[w] - starts[w])
                centre = 0.5 * (ends[w] + starts[w])
                weight = 1.0 - 0.9 * np.abs(t[inside] - centre) / max(half, 1e-3)
                votes[inside, index[labels[w]]] += weight
            uncovered = np.nonzero(votes.sum(axis=1) == 0)[0]
            if uncovered.size:  # gaps between sparse windows (hop_s > window_s): the nearest window's speaker
                centres = 0.5 * (starts[cover] + ends[cover])
                nearest = cover[np.argmin(np.abs(t[uncovered, None] - centres[None, :]), axis=1)]
                votes[uncovered, [index[labels[w]] for w in nearest]] = 1e-3
        best = np.argmax(votes, axis=1)
        runs = _runs(best)
        runs = _absorb_short_runs(runs, int(round(_MIN_RUN_S / _STEP_S)))
        for label, a, b in runs:
            out.append((int(ids[label]), r_start + a * _STEP_S, min(r_end, r_start + b * _STEP_S)))
    return out


def _runs(values: np.ndarray) -> list[tuple[int, int, int]]:
    """``(value, start, end)`` runs of equal values."""
    change = np.nonzero(np.diff(values))[0] + 1
    bounds = [0, *change.tolist(), len(values)]
    return [(int(values[a]), a, b) for a, b in zip(bounds, bounds[1:])]


def _absorb_short_runs(runs: list[tuple[int, int, int]], min_len: int) -> list[tuple[int, int, int]]:
    runs = list(runs)
    while len(runs) > 1:
        lengths = [b - a for _, a, b in runs]
        i = int(np.argmin(lengths))
        if lengths[i] >= min_len:
            break
        label, a, b = runs[i]
        if i == 0:
            runs[1] = (runs[1][0], a, runs[1][2])
        elif i == len(runs) - 1 or lengths[i - 1] >= lengths[i + 1]:
            runs[i - 1] = (runs[i - 1][0], runs[i - 1][1], b)
        else:
            runs[i + 1] = (runs[i + 1][0], a, runs[i + 1][2])
        del runs[i]
        merged: list[tuple[int, int, int]] = []
        for run in runs:
            if merged and merged[-1][0] == run[0]:
                merged[-1] = (run[0], merged[-1][1], run[2])
            else:
                merged.append(run)
        runs = merged
    return runs


def _finish(raw: list[tuple[int, float, float]], duration_s: float, n_windows: int, started: float) -> Diarization:
    raw.sort(key=lambda r: r[1])
    names: dict[int, str] = {}
    segments: list[SpeakerSegment] = []
    for label, start, end in raw:
        if end <= start:
            continue
        name = names.setdefault(label, f"S{len(names) + 1}")
        if segments and segments[-1].speaker == name and start - segments[-1].end_s < 1e-6:
            segments[-1] = SpeakerSegment(name, segments[-1].start_s, round(end, 3))
        else:
            segments.append(SpeakerSegment(name, round(start, 3), round(end, 3)))
    return Diarization(segments=tuple(segments), speakers=tuple(names.values()), duration_s=round(duration_s, 3),
                       n_windows=n_windows, elapsed_s=round(time.perf_counter() - started, 3))


def _diarize_blocks(model: SpeakerModel, blocks: Iterable[tuple[float, np.ndarray]],
                    options: DiarizeOptions) -> Diarization:
    started = time.perf_counter()
    regions: list[tuple[float, float]] = []
    windows: list[tuple[float, float]] = []
    parts: list[np.ndarray] = []
    duration_s = 0.0
    for offset_s, samples in blocks:
        duration_s = max(duration_s, offset_s + samples.shape[0] / SAMPLE_RATE)
        block_regions = [(a + offset_s, b + offset_s) for a, b in detect_speech(samples, options)]
        block_windows = speech_windows(block_regions, options)
        regions.extend(block_regions)
        windows.extend(block_windows)
        parts.append(embed_windows(model, samples, block_windows, offset_s=offset_s, batch_size=options.batch_size))
    embeddings = np.concatenate(parts) if parts else np.zeros((0, model.dim), dtype=np.float32)
    labels = cluster_embeddings(embeddings, options)
    raw = _segments_from_votes(regions, windows, labels, embeddings)
    result = _finish(raw, duration_s, len(windows), started)
    logger.info("diarized %.1f s: %d speakers, %d windows, %.2f s", duration_s, len(result.speakers),
                len(windows), result.elapsed_s)
    return result


def diarize_audio(model: SpeakerModel, samples: np.ndarray, options: DiarizeOptions | None = None) -> Diarization:
    """Diarize a 16 kHz mono signal held in memory (in ``block_s`` pieces)."""
    options = options or DiarizeOptions()
    signal = np.asarray(samples, dtype=np.float32).reshape(-1)
    block = max(SAMPLE_RATE, int(options.block_s * SAMPLE_RATE))
    return _diarize_blocks(model, ((i / SAMPLE_RATE, signal[i : i + block]) for i in range(0, len(signal), block)),
                           options)


def diarize_file(model: SpeakerModel, path: Path, options: DiarizeOptions | None = None, *,
                 channel: int = 0, max_duration_s: float | None = None) -> Diarization:
    """Diarize one channel of a recording, decoding ``block_s`` seconds at a time (bounded memory)."""
    options = options or DiarizeOptions()
    blocks = ((b.offset_s, b.samples[min(channel, b.samples.shape[0] - 1)])
              for b in iter_audio_blocks(Path(path), block_s=options.block_s, max_duration_s=max_duration_s))
    return _diarize_blocks(model, blocks, options)


def assign_words(words: Sequence[tuple[str, float, float, float]],
                 diarization: Diarization) -> list[str]:
    """The speaker of each word: most time overlap with a speaker segment, else the nearest segment."""
    segs = diarization.segments
    if not segs:
        return ["S1"] * len(words)
    starts = np.array([s.start_s for s in segs])
    ends = np.array([s.end_s for s in segs])
    result: list[str] = []
    for _word, w_start, w_end, _p in words:
        overlap = np.minimum(ends, w_end) - np.maximum(starts, w_start)
        best = int(np.argmax(overlap))
        if overlap[best] <= 0:
            mid = 0.5 * (w_start + w_end)
            best = int(np.argmin(np.minimum(np.abs(starts - mid), np.abs(ends - mid))))
        else:  # sum overlaps per speaker, a word may straddle several segments of one speaker
            per: dict[str, float] = {}
            for i in np.nonzero(overlap > 0)[0]:
                per[segs[i].speaker] = per.get(segs[i].speaker, 0.0) + float(overlap[i])
            result.append(max(per, key=lambda k: per[k]))
            continue
        result.append(segs[best].speaker)
    return result
