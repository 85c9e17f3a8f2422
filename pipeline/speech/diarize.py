"""Who spoke when in a mono recording, offline and without torch.

Speech regions come from Silero VAD (bundled with faster-whisper) — in the pipeline, from the
recogniser's own VAD pass (:func:`speech_from_vad`), so the network runs once per call. Log mel
features (:mod:`pipeline.speech.fbank`) are computed once per region. A sparse set of
windows — one ``window_s`` window per ``hop_s`` seconds of speech for the first
``dense_speech_s`` of each block, then growing with the square root of the speech — gets a CAM++ speaker
embedding from the int8 ONNX model in ``models/speaker/`` run on onnxruntime; spectral clustering
of those embeddings gives the speakers (their number estimated from the eigengap, 1 to
``max_speakers``, or fixed by ``n_speakers``). Then every 10 ms frame of speech is
resegmented: each speaker's frames inside its windows train a Gaussian voice model on
cepstra, and each frame goes to the speaker whose model explains the surrounding
``smooth_s`` best (refitted on all frames, ``reseg_iterations`` passes). The network is the
expensive part, so it sees only a fraction of the speech; the per-call voice models are
cheap and place the turn boundaries. Words are then given to the speaker whose segments they
overlap most (:func:`assign_words`).

Long files are decoded and embedded block by block; at most ``max_cluster_windows``
embeddings are clustered together and the rest join the nearest centroid; per speech frame
only 20 cepstra are kept, so memory stays bounded however long the call is.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.config import DiarizeOptions
from pipeline.errors import PipelineError
from pipeline.ingest.audio import SAMPLE_RATE, iter_audio_blocks
from pipeline.speech import vad
from pipeline.speech.blas import one_blas_thread
from pipeline.speech.fbank import FbankOptions, cepstra, compute_fbank, n_frames

__all__ = [
    "DiarizeOptions",
    "SpeakerModel",
    "SpeakerSegment",
    "Diarization",
    "default_model_path",
    "load_speaker_model",
    "detect_speech",
    "speech_from_vad",
    "shares_vad",
    "reusable_speech",
    "speech_windows",
    "window_count",
    "cluster_embeddings",
    "diarize_audio",
    "diarize_file",
    "assign_words",
    "snap_to_sentences",
    "ends_sentence",
]

logger = logging.getLogger("callcycle.diarize")

_FBANK = FbankOptions()
_STEP_S = _FBANK.frame_shift_ms / 1000.0
#: Speech regions shorter than this get no embedding window (the resegmentation labels them).
_MIN_WINDOW_S = 0.5
#: Cepstra per frame for the per-call voice models.
_N_CEPSTRA = 20
#: Weight of the similarities the spectral clustering's neighbour pruning drops.
_FAINT = 0.001
#: A speaker needs this many frames (0.5 s) for a voice model.
_MIN_MODEL_FRAMES = 50
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
        stage_s: wall time per stage (``vad``, ``features``, ``embed``, ``cluster``, ``resegment``).
    """

    segments: tuple[SpeakerSegment, ...]
    speakers: tuple[str, ...]
    duration_s: float
    n_windows: int
    elapsed_s: float
    stage_s: dict[str, float] = field(default_factory=dict)


#: The speaker model callcycle runs: CAM++ quantised to int8 (``scripts/quantize_speaker_model.py``);
#: the float original beside it is the quantisation's source (``[diarize] model_path`` selects it).
SPEAKER_MODEL_FILE = "campplus_cn_en_common.int8.onnx"


def default_model_path() -> Path:
    """The shipped CAM++ ONNX model: ``speaker/campplus_cn_en_common.int8.onnx`` in the packaged models
    (``pipeline/_data/models``, copied there when a wheel is built) or the checkout's ``models/``."""
    from pipeline.paths import shipped_model_dir

    return shipped_model_dir("speaker", SPEAKER_MODEL_FILE) / SPEAKER_MODEL_FILE


def load_speaker_model(path: str | Path | None = None, *, threads: int = 1) -> SpeakerModel:
    """Open the speaker-embedding ONNX model (once per worker).

    Args:
        path: the ONNX file; ``None`` uses :func:`default_model_path`.
        threads: onnxruntime intra-op threads. One by default: on the shared 2-core machine one
            thread measured 0.53 s of CPU for 23 one-second windows against 0.92 s with two
            (BENCHMARKS.md), and files already run in parallel across workers.

    Raises:
        PipelineError: the file is missing or onnxruntime cannot load it.
    """
    import onnxruntime as ort

    model_path, card = check_speaker_model(path)
    restore = f"Restore the file from the repository (its sha256 is in {model_path.with_name('card.json')})."
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        raise PipelineError(f"Cannot load speaker model {model_path}: {exc}.", restore, step="diarize") from exc
    width = session.get_outputs()[0].shape[-1]
    dim = width if isinstance(width, int) else int(card.get("embedding_dim", 192))
    return SpeakerModel(path=model_path, session=session, dim=dim)


def check_speaker_model(path: str | Path | None = None) -> tuple[Path, dict[str, Any]]:
    """The speaker model's path and card, checked without loading it: the file is there and, where a card
    beside it records its sha256, matches it. Run before a batch so that a missing or damaged model stops
    the run at once instead of failing every recording after its transcription.

    Raises:
        PipelineError: the file is missing, unreadable, or does not match its card.
    """
    model_path = Path(path) if path else default_model_path()
    card_path = model_path.with_name("card.json")
    if not model_path.is_file():
        raise PipelineError(f"Speaker model not found: {model_path}.",
                            "Restore models/speaker/ from the repository, or run scripts/export_speaker_model.py "
                            "(see models/speaker/README.md); or turn diarization off with --no-diarize.",
                            step="diarize")
    restore = f"Restore the file from the repository (its sha256 is in {card_path})."
    try:
        raw = model_path.read_bytes()
    except OSError as exc:
        raise PipelineError(f"Cannot read speaker model {model_path}: {exc}.", restore, step="diarize") from exc
    card = _speaker_card(model_path)
    expected = _card_sha256(card, model_path.name)
    if expected is not None and hashlib.sha256(raw).hexdigest() != expected:
        raise PipelineError(f"The speaker model {model_path} does not match the checksum in its card {card_path}.",
                            restore + " Or turn diarization off with --no-diarize.", step="diarize")
    return model_path, card


def _speaker_card(model_path: Path) -> dict[str, Any]:
    """The ``card.json`` beside a speaker model (``{}`` for a model of your own without one)."""
    card = model_path.with_name("card.json")
    if not card.is_file():
        return {}
    try:
        found = json.loads(card.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PipelineError(f"Cannot read the speaker model's card {card}: {exc}.",
                            "Restore models/speaker/ from the repository.", step="diarize") from exc
    return found if isinstance(found, dict) else {}


def _card_sha256(card: dict[str, Any], file_name: str) -> str | None:
    """The sha256 the card records for ``file_name`` (the float model, or its ``int8`` copy); ``None`` if none."""
    for entry in (card, card.get("int8")):
        if isinstance(entry, dict) and entry.get("file") == file_name and isinstance(entry.get("sha256"), str):
            return str(entry["sha256"])
    return None


#: Speech shorter than this (after joining across short pauses) is not a diarization region.
_MIN_SPEECH_MS = 150
#: Padding of diarization regions.
_PAD_MS = 60


def detect_speech(samples: np.ndarray, options: DiarizeOptions | None = None) -> list[tuple[float, float]]:
    """Speech regions ``(start_s, end_s)`` of a 16 kHz mono signal, from faster-whisper's Silero VAD.

    One unpadded VAD pass (:func:`pipeline.speech.vad.detect`, the recogniser's settings) turned
    into diarization regions by :func:`speech_from_vad` — so a diarizer handed the recogniser's
    regions sees exactly what its own pass would find.
    """
    options = options or DiarizeOptions()
    raw = vad.detect(samples, threshold=options.vad_threshold)
    return speech_from_vad([(a / SAMPLE_RATE, b / SAMPLE_RATE) for a, b in raw], samples.shape[0] / SAMPLE_RATE,
                           options)


def speech_from_vad(raw: Sequence[tuple[float, float]], duration_s: float,
                    options: DiarizeOptions | None = None) -> list[tuple[float, float]]:
    """Diarization regions from unpadded VAD regions (seconds): pauses under ``min_silence_ms``
    bridged, speech under 150 ms dropped, 60 ms of padding (within ``duration_s``)."""
    options = options or DiarizeOptions()
    samples = [(int(round(a * SAMPLE_RATE)), int(round(b * SAMPLE_RATE))) for a, b in raw]
    kept = vad.merge(samples, options.min_silence_ms, _MIN_SPEECH_MS)
    return [(a / SAMPLE_RATE, b / SAMPLE_RATE) for a, b in vad.pad(kept, _PAD_MS, int(round(duration_s * SAMPLE_RATE)))]


def shares_vad(options: DiarizeOptions, min_silence_ms: int) -> bool:
    """Whether regions found with the recogniser's VAD pass (pauses of ``min_silence_ms`` end a region,
    default threshold) can stand in for the diarizer's own pass under ``options``."""
    return options.vad_threshold == vad.DEFAULT_THRESHOLD and min_silence_ms <= options.min_silence_ms


def reusable_speech(raw: Sequence[tuple[float, float]] | None, duration_s: float, min_silence_ms: int,
                    options: DiarizeOptions | None = None) -> list[tuple[float, float]] | None:
    """Diarization regions from the recogniser's unpadded VAD regions of a channel (``None`` when the
    recogniser ran no VAD of its own), or ``None`` when its settings cannot stand in for the
    diarizer's (:func:`shares_vad`) — ``diarize_file(..., speech=None)`` then runs its own pass."""
    options = options or DiarizeOptions()
    if raw is None or not shares_vad(options, min_silence_ms):
        return None
    return speech_from_vad(raw, duration_s, options)


def window_count(speech_s: float, options: DiarizeOptions | None = None) -> int:
    """How many embedding windows ``speech_s`` seconds of speech (one block) get.

    ``speech_s / hop_s`` up to ``dense_speech_s``; beyond it ``(dense_speech_s / hop_s) *
    sqrt(speech_s / dense_speech_s)`` — the windows only find the speakers and seed their voice
    models (the resegmentation labels every frame), and that needs a few dozen windows per
    speaker, not a number that grows with the call. Never fewer than ``min_windows`` (nor than
    one); ``dense_speech_s <= 0`` keeps one window per ``hop_s`` throughout.
    """
    options = options or DiarizeOptions()
    if speech_s <= 0:
        return 0
    dense = options.dense_speech_s
    if dense <= 0 or speech_s <= dense:
        wanted = speech_s / options.hop_s
    else:
        wanted = (dense / options.hop_s) * float(np.sqrt(speech_s / dense))
    return max(1, int(round(max(wanted, options.min_windows))))


def speech_windows(regions: Sequence[tuple[float, float]],
                   options: DiarizeOptions | None = None) -> list[tuple[float, float]]:
    """Sparse speaker-embedding windows over speech regions.

    One window of ``window_s`` per ``hop_s`` seconds of speech for the first ``dense_speech_s``
    seconds, then fewer: beyond that the number of windows grows with the square root of the
    speech (:func:`window_count`), at least ``min_windows`` when the speech allows. Points are
    spread evenly over the speech laid end to end; each window is
    centred on its point and kept inside the point's region; a region shorter than ``window_s``
    (but at least 0.5 s) is embedded whole. Regions shorter than that get no window (the
    resegmentation gives them a speaker).
    """
    options = options or DiarizeOptions()
    usable = [(a, b) for a, b in regions if b - a >= _MIN_WINDOW_S]
    lengths = np.array([b - a for a, b in usable])
    speech = float(lengths.sum())
    if speech <= 0:
        return []
    n_points = window_count(speech, options)
    points = (np.arange(n_points) + 0.5) * speech / n_points
    starts = np.concatenate([[0.0], np.cumsum(lengths)])
    windows: list[tuple[float, float]] = []
    for point in points:
        r = min(int(np.searchsorted(starts, point, side="right")) - 1, len(usable) - 1)
        a, b = usable[r]
        if b - a <= options.window_s:
            window = (a, b)
        else:
            centre = a + (point - starts[r])
            first = min(max(centre - 0.5 * options.window_s, a), b - options.window_s)
            window = (float(first), float(first + options.window_s))
        if not windows or window[0] - windows[-1][0] >= 0.5 * options.window_s:  # no near-copies
            windows.append(window)
    return windows


def _embed(model: SpeakerModel, feats: Sequence[np.ndarray], batch_size: int) -> np.ndarray:
    """L2-normalised embeddings (len(feats), dim) of fbank windows; equal lengths run together."""
    out = np.zeros((len(feats), model.dim), dtype=np.float32)
    by_length: dict[int, list[int]] = {}
    for i, f in enumerate(feats):
        by_length.setdefault(f.shape[0], []).append(i)
    for idx in by_length.values():
        for k in range(0, len(idx), batch_size):
            part = idx[k : k + batch_size]
            batch = np.stack([feats[i] - feats[i].mean(axis=0, keepdims=True) for i in part]).astype(np.float32)
            out[part] = model.session.run(["embedding"], {"feats": batch})[0]
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-8)


def _spectral_labels(x: np.ndarray, n_speakers: int | None, max_speakers: int, random_state: int) -> np.ndarray:
    """Spectral clustering of unit vectors: pruned cosine affinity, Laplacian, eigengap, k-means."""
    from scipy.linalg import eigh

    n = x.shape[0]
    sim = np.clip(x @ x.T, 0.0, 1.0)
    keep = min(n - 1, max(6, int(round(0.05 * n))))  # strongest neighbours per row
    threshold = -np.sort(-sim, axis=1)[:, keep][:, None]
    # a faint copy of the full similarity keeps the pruned graph connected: where near-identical
    # windows form more islands than there are speakers, the islands still group by voice
    affinity = np.where(sim >= threshold, sim, _FAINT * sim)
    affinity = 0.5 * (affinity + affinity.T)
    np.fill_diagonal(affinity, 0.0)
    degree = affinity.sum(axis=1)
    laplacian = np.diag(degree) - affinity
    top = min(n - 1, max(max_speakers, n_speakers or 0) + 1)  # a fixed count above the estimate's cap gets its vectors
    values, vectors = eigh(laplacian, subset_by_index=[0, top])
    if n_speakers is None:
        gaps = np.diff(values[: max_speakers + 1])
        k = int(np.argmax(gaps)) + 1
    else:
        k = n_speakers
    k = max(1, min(k, n))
    if k == 1:
        return np.zeros(n, dtype=int)
    return _kmeans(vectors[:, :k], k, random_state)


def _kmeans(x: np.ndarray, k: int, seed: int, restarts: int = 10, iterations: int = 50) -> np.ndarray:
    """Labels of the best of ``restarts`` k-means runs (k-means++ seeding) on a few dimensions.

    Plain numpy: the spectral vectors are small (windows x k), where scikit-learn's KMeans costs
    more in start-up and threads than in arithmetic.
    """
    rng = np.random.default_rng(seed)
    best_labels, best_inertia = np.zeros(x.shape[0], dtype=int), np.inf
    for _ in range(restarts):
        centres = x[[int(rng.integers(x.shape[0]))]]
        for _ in range(1, k):
            d2 = ((x[:, None, :] - centres[None]) ** 2).sum(axis=2).min(axis=1)
            total = d2.sum()
            pick = int(rng.choice(x.shape[0], p=d2 / total)) if total > 0 else int(rng.integers(x.shape[0]))
            centres = np.vstack([centres, x[pick]])
        labels = np.zeros(x.shape[0], dtype=int)
        for step in range(iterations):
            d2 = ((x[:, None, :] - centres[None]) ** 2).sum(axis=2)
            new = np.argmin(d2, axis=1)
            if step and np.array_equal(new, labels):
                break
            labels = new
            centres = np.stack([x[labels == c].mean(axis=0) if np.any(labels == c) else centres[c] for c in range(k)])
        inertia = float(((x - centres[labels]) ** 2).sum())
        if inertia < best_inertia:
            best_labels, best_inertia = labels, inertia
    return best_labels


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


def _gaussian_logliks(x: np.ndarray, labels: np.ndarray, n_labels: int) -> tuple[np.ndarray, np.ndarray]:
    """Log-likelihood of every frame under a full-covariance Gaussian per label (fitted on that
    label's frames); returns the labels that have enough frames for a model, and (frames, models)."""
    from scipy.linalg import solve_triangular

    live, columns = [], []
    for c in range(n_labels):
        xc = x[labels == c]
        if xc.shape[0] < _MIN_MODEL_FRAMES:
            continue
        cov = np.cov(xc, rowvar=False) + 1e-3 * np.eye(x.shape[1])
        chol = np.linalg.cholesky(cov)
        z = solve_triangular(chol, (x - xc.mean(axis=0)).T, lower=True, check_finite=False)
        columns.append(-0.5 * np.einsum("ij,ij->j", z, z) - float(np.log(np.diag(chol)).sum()))
        live.append(c)
    return np.array(live, dtype=int), np.stack(columns, axis=1)


def _resegment(x: np.ndarray, lo: np.ndarray, hi: np.ndarray, anchors: np.ndarray, n_labels: int,
               options: DiarizeOptions) -> np.ndarray:
    """The speaker of every speech frame, from per-call voice models.

    Each speaker's frames inside its embedded windows (``anchors``: label or -1) train a Gaussian
    on cepstra; every frame then goes to the speaker whose model, averaged over ``smooth_s``
    around the frame within its speech region (``lo``/``hi``: the region's frame range), explains
    it best; the models are refitted on all frames ``reseg_iterations`` - 1 more times.
    """
    labels = anchors
    half = max(1, int(round(0.5 * options.smooth_s / _STEP_S)))
    idx = np.arange(x.shape[0])
    first, last = np.maximum(idx - half, lo), np.minimum(idx + half + 1, hi)
    for _ in range(max(1, options.reseg_iterations)):
        live, loglik = _gaussian_logliks(x, labels, n_labels)
        if live.size == 0:
            break
        total = np.concatenate([np.zeros((1, live.size)), np.cumsum(loglik, axis=0)])
        smoothed = (total[last] - total[first]) / (last - first)[:, None]
        labels = live[np.argmax(smoothed, axis=1)]
    return np.where(labels < 0, 0, labels)


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


def _finish(raw: list[tuple[int, float, float]], duration_s: float, n_windows: int, started: float,
            stage_s: dict[str, float]) -> Diarization:
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
                       n_windows=n_windows, elapsed_s=round(time.perf_counter() - started, 3),
                       stage_s={k: round(v, 4) for k, v in stage_s.items()})


@dataclass(slots=True)
class _Region:
    """A speech region's frames: its call time, where its cepstra start in the call's frame list."""

    start_s: float
    end_s: float
    first: int
    count: int


def _diarize_blocks(model: SpeakerModel, blocks: Iterable[tuple[float, np.ndarray]], options: DiarizeOptions,
                    speech: Sequence[tuple[float, float]] | None) -> Diarization:
    # numpy's BLAS on one thread here: the matrices are small, and on a shared 2-core machine two
    # BLAS threads made a 20x20 covariance 8x slower (16 ms against 2 ms, BENCHMARKS.md)
    with one_blas_thread():
        return _diarize_blocks_unthreaded(model, blocks, options, speech)


def _diarize_blocks_unthreaded(model: SpeakerModel, blocks: Iterable[tuple[float, np.ndarray]],
                               options: DiarizeOptions, speech: Sequence[tuple[float, float]] | None) -> Diarization:
    started = time.perf_counter()
    stage_s = dict.fromkeys(("vad", "features", "embed", "cluster", "resegment"), 0.0)
    regions: list[_Region] = []
    cepstra_parts: list[np.ndarray] = []
    anchor_parts: list[np.ndarray] = []  # per frame: index of the window it lies in, or -1
    embeddings: list[np.ndarray] = []
    n_frames_total, n_windows, duration_s = 0, 0, 0.0
    for offset_s, samples in blocks:
        block_end = offset_s + samples.shape[0] / SAMPLE_RATE
        duration_s = max(duration_s, block_end)
        clock = time.perf_counter()
        if speech is None:
            block_regions = [(a + offset_s, b + offset_s) for a, b in detect_speech(samples, options)]
        else:
            block_regions = [(max(a, offset_s), min(b, block_end)) for a, b in speech if b > offset_s and a < block_end]
        stage_s["vad"] += time.perf_counter() - clock
        clock = time.perf_counter()
        fbanks: list[np.ndarray] = []
        block_first = len(regions)
        for a, b in block_regions:
            i0 = int(round((a - offset_s) / _STEP_S)) * _FBANK.frame_shift  # on the 10 ms grid of call time
            fb = compute_fbank(samples[i0 : int(round((b - offset_s) * SAMPLE_RATE))], _FBANK)
            if fb.shape[0] < 3:
                continue
            regions.append(_Region(offset_s + i0 / SAMPLE_RATE, b, n_frames_total, fb.shape[0]))
            n_frames_total += fb.shape[0]
            fbanks.append(fb)
            cepstra_parts.append(cepstra(fb, _N_CEPSTRA))
            anchor_parts.append(np.full(fb.shape[0], -1, dtype=np.int64))
        block = regions[block_first:]
        windows = speech_windows([(r.start_s, r.end_s) for r in block], options)
        starts = np.array([r.start_s for r in block])
        feats: list[np.ndarray] = []
        for w_start, w_end in windows:
            k = int(np.searchsorted(starts, w_start + 1e-6)) - 1
            first = int(round((w_start - block[k].start_s) / _STEP_S))
            last = min(fbanks[k].shape[0], first + n_frames(int(round((w_end - w_start) * SAMPLE_RATE)), _FBANK))
            if last - first < 10:
                continue
            anchor_parts[block_first + k][first:last] = n_windows + len(feats)
            feats.append(fbanks[k][first:last])
        stage_s["features"] += time.perf_counter() - clock
        clock = time.perf_counter()
        embeddings.append(_embed(model, feats, options.batch_size))
        n_windows += len(feats)
        stage_s["embed"] += time.perf_counter() - clock
    raw: list[tuple[int, float, float]] = []
    if regions:
        clock = time.perf_counter()
        window_labels = cluster_embeddings(np.concatenate(embeddings), options)
        ids = np.unique(window_labels)
        stage_s["cluster"] += time.perf_counter() - clock
        clock = time.perf_counter()
        anchors = np.concatenate(anchor_parts)
        frame_labels = np.zeros(n_frames_total, dtype=np.int64)
        if ids.size > 1:
            x = np.concatenate(cepstra_parts)
            x = (x - x.mean(axis=0)) / np.maximum(x.std(axis=0), 1e-6)
            lo = np.concatenate([np.full(r.count, r.first) for r in regions])
            anchor_labels = np.where(anchors >= 0, np.searchsorted(ids, window_labels[anchors]), -1)
            hi = lo + np.concatenate([np.full(r.count, r.count) for r in regions])
            frame_labels = _resegment(x, lo, hi, anchor_labels, ids.size, options)
        min_run = int(round(_MIN_RUN_S / _STEP_S))
        for r in regions:
            runs = _absorb_short_runs(_runs(frame_labels[r.first : r.first + r.count]), min_run)
            for label, a, b in runs:
                end = r.end_s if b == r.count else min(r.end_s, r.start_s + b * _STEP_S)
                raw.append((int(label), max(r.start_s + a * _STEP_S, 0.0), end))
        stage_s["resegment"] += time.perf_counter() - clock
    result = _finish(raw, duration_s, n_windows, started, stage_s)
    logger.info("diarized %.1f s: %d speakers, %d windows, %.2f s", duration_s, len(result.speakers),
                n_windows, result.elapsed_s)
    return result


def diarize_audio(model: SpeakerModel, samples: np.ndarray, options: DiarizeOptions | None = None, *,
                  speech: Sequence[tuple[float, float]] | None = None) -> Diarization:
    """Diarize a 16 kHz mono signal held in memory (in ``block_s`` pieces).

    Args:
        speech: speech regions ``(start_s, end_s)`` already known; ``None`` finds them with Silero VAD.
    """
    options = options or DiarizeOptions()
    signal = np.asarray(samples, dtype=np.float32).reshape(-1)
    block = max(SAMPLE_RATE, int(options.block_s * SAMPLE_RATE))
    return _diarize_blocks(model, ((i / SAMPLE_RATE, signal[i : i + block]) for i in range(0, len(signal), block)),
                           options, speech)


def diarize_file(model: SpeakerModel, path: Path, options: DiarizeOptions | None = None, *,
                 channel: int = 0, max_duration_s: float | None = None,
                 speech: Sequence[tuple[float, float]] | None = None) -> Diarization:
    """Diarize one channel of a recording, decoding ``block_s`` seconds at a time (bounded memory).

    Args:
        speech: speech regions ``(start_s, end_s)`` already known; ``None`` finds them with Silero VAD.
    """
    options = options or DiarizeOptions()
    blocks = ((b.offset_s, b.samples[min(channel, b.samples.shape[0] - 1)])
              for b in iter_audio_blocks(Path(path), block_s=options.block_s, max_duration_s=max_duration_s))
    return _diarize_blocks(model, blocks, options, speech)


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


_SENTENCE_END = re.compile(r"[.?!][\"')\]]*$")


def ends_sentence(word: str) -> bool:
    """Whether a recognised word ends a sentence (a full stop, question or exclamation mark)."""
    return bool(_SENTENCE_END.search(word.strip()))


def _run_length(labels: Sequence[str], index: int, step: int) -> int:
    """How many words from ``index`` on (``step`` -1: backwards) carry the label at ``index``."""
    count = 0
    label = labels[index]
    while 0 <= index < len(labels) and labels[index] == label:
        count += 1
        index += step
    return count


def snap_to_sentences(words: Sequence[tuple[str, float, float, float]], speakers: Sequence[str],
                      max_words: int = 2, max_shift_s: float = 0.8, sentence_bonus_s: float = 0.3,
                      max_island_words: int = 3) -> list[str]:
    """Speaker labels with the changes that fall inside a recognised sentence removed or moved to its end.

    The diarizer places a speaker change to within a few hundred milliseconds; the recogniser's
    punctuation says where a sentence ends. Two passes:

    1. An *island* — at most ``max_island_words`` words given to another speaker in the middle of
       one sentence whose words on both sides are one speaker's, in runs at least as long
       ("when a customer | has | to be displayed") — goes back to that speaker (``0`` turns this
       pass off).
    2. A change between two words of one sentence ("I didn't know you were | there. Neither did
       I.") is moved to the best boundary within ``max_words`` words and ``max_shift_s`` seconds of
       it, judged by the pause before it plus ``sentence_bonus_s`` when the word before it ends a
       sentence; it moves only to a sentence end that beats the change where it is, and each of the
       two speakers keeps at least one word.

    Args:
        words: ``(word, start_s, end_s, probability)`` in time order, as for :func:`assign_words`.
        speakers: the speaker of each word (from :func:`assign_words`).
    """
    if len(words) != len(speakers):
        raise ValueError("words and speakers must have the same length")
    labels = list(speakers)
    n = len(labels)
    ends = [ends_sentence(w[0]) for w in words]
    start = 1
    while start < n - 1 and max_island_words > 0:
        if labels[start] == labels[start - 1]:
            start += 1
            continue
        size = _run_length(labels, start, 1)  # another speaker's run: start..stop
        stop = start + size - 1
        if (stop + 1 < n and labels[stop + 1] == labels[start - 1] and size <= max_island_words
                and not any(ends[start - 1 : stop + 1])
                and _run_length(labels, start - 1, -1) >= size and _run_length(labels, stop + 1, 1) >= size):
            labels[start : stop + 1] = [labels[start - 1]] * size
        start = stop + 1

    def score(b: int) -> float:
        return max(0.0, words[b][1] - words[b - 1][2]) + (sentence_bonus_s if ends[b - 1] else 0.0)

    i = 1
    while i < n:
        if labels[i] == labels[i - 1] or ends[i - 1]:
            i += 1
            continue
        before, after = labels[i - 1], labels[i]
        first = i - _run_length(labels, i - 1, -1)  # first word of the run before the change
        last = i + _run_length(labels, i, 1) - 1  # last word of the run after it
        best, best_score = i, score(i)
        for b in range(max(first + 1, i - max_words), min(last, i + max_words) + 1):
            if b == i or not ends[b - 1] or abs(words[b][1] - words[i][1]) > max_shift_s:
                continue
            candidate = score(b)
            if candidate > best_score:
                best, best_score = b, candidate
        for k in range(min(best, i), max(best, i)):
            labels[k] = before if best > i else after
        i = max(best, i) + 1
    return labels
