"""A small sentence encoder (all-MiniLM-L6-v2) run on onnxruntime, offline.

The encoder turns each segment into a 384-dimensional unit vector that places
"yeah i can worry about the interface part" near "I'll handle the interface" although
they share no n-gram — what a TF-IDF representation cannot do. It is exported once to ONNX
by ``scripts/export_encoder.py`` (torch only there, in a scratch environment) and shipped in
``models/encoders/<name>/`` with its tokenizer, licence and ``encoder.json``; at run time it
needs only onnxruntime (installed with faster-whisper) and ``tokenizers``. Loading reads
an ONNX graph and a JSON tokenizer and checks both files' sha256 against ``encoder.json``:
nothing in those files is executed as code.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import ModelArtifactError

__all__ = ["EncoderOptions", "SentenceEncoder", "load_encoder", "ENCODER_FORMAT"]

logger = logging.getLogger("callcycle.encoder")

ENCODER_FORMAT = "callcycle-encoder/1"


@dataclass(frozen=True, slots=True)
class EncoderOptions:
    """How the encoder runs.

    Attributes:
        batch_size: texts per onnxruntime call. The shipped encoder computes in float32, where a
            text's vector does not depend on the texts batched with it (max abs difference 6e-8
            against the text encoded alone, measured on the AMI acts), and batches of 32 encode
            1.2-1.7x as many texts per second as one text per call (BENCHMARKS.md). An
            encoder whose graph is int8 with *dynamic* quantisation (``"int8"`` in its
            ``encoder.json`` weights) computes activation scales over the whole input tensor, so
            in a batch a text's vector moved with its batch-mates (cosine down to 0.96); such an
            encoder always runs one text per call, whatever this says.
        threads: onnxruntime intra-op threads; 0 lets onnxruntime use every core.
    """

    batch_size: int = 32
    threads: int = 0


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class SentenceEncoder:
    """Encode texts into L2-normalised sentence vectors.

    Use :func:`load_encoder` to build one from a shipped encoder folder.
    """

    def __init__(self, directory: Path, info: dict[str, Any], session: Any, tokenizer: Any,
                 options: EncoderOptions) -> None:
        self.directory = directory
        self.info = info
        self.name = str(info["name"])
        self.dimension = int(info["dimension"])
        self._session = session
        self._tokenizer = tokenizer
        self._options = options

    @property
    def quantised(self) -> bool:
        """True for a dynamically quantised (int8) graph, whose vectors depend on their batch-mates."""
        return "int8" in str(self.info.get("weights", "")).lower()

    @property
    def batch_size(self) -> int:
        """Texts per onnxruntime call: the option's value, or 1 for a quantised graph."""
        return 1 if self.quantised else max(1, self._options.batch_size)

    def encode(self, texts: list[str] | tuple[str, ...]) -> np.ndarray:
        """Vectors for ``texts``: float32 array of shape ``(len(texts), dimension)``."""
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        if not len(texts):
            return out
        cleaned = [" ".join(str(t).split()) or "." for t in texts]
        # calls repeat short texts ("yeah.", "okay.", "mm-hmm."): each distinct text is encoded once
        unique, inverse = np.unique(np.asarray(cleaned, dtype=object), return_inverse=True)
        vectors = np.zeros((len(unique), self.dimension), dtype=np.float32)
        order = np.argsort([len(t) for t in unique], kind="stable")
        size = self.batch_size
        for begin in range(0, len(order), size):
            idx = order[begin : begin + size]
            encodings = self._tokenizer.encode_batch([str(unique[i]) for i in idx])
            ids = np.asarray([e.ids for e in encodings], dtype=np.int64)
            mask = np.asarray([e.attention_mask for e in encodings], dtype=np.int64)
            vectors[idx] = self._session.run(["embedding"], {"input_ids": ids, "attention_mask": mask})[0]
        out[:] = vectors[inverse.reshape(-1)]
        return out


def load_encoder(directory: Path, options: EncoderOptions | None = None) -> SentenceEncoder:
    """Load and verify a shipped encoder folder (``encoder.json``, ``model.onnx``, ``tokenizer.json``).

    Raises:
        ModelArtifactError: a file is missing, its checksum differs from ``encoder.json``,
            or the format is unknown.
    """
    import onnxruntime as ort
    from tokenizers import Tokenizer

    opts = options or EncoderOptions()
    directory = Path(directory)
    info_path = directory / "encoder.json"
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelArtifactError(f"Sentence encoder {directory} has no encoder.json.",
                                 "A models folder needs the sentence encoders beside its models: copy or link the "
                                 "checkout's models/encoders/ into it (cp -r models/encoders FOLDER/), or train "
                                 "without an encoder (--encoder none).") from exc
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelArtifactError(f"Cannot read {info_path}: {exc}.", "Restore the file from the repository.") from exc
    if info.get("format") != ENCODER_FORMAT:
        raise ModelArtifactError(f"{info_path}: unknown encoder format {info.get('format')!r}.",
                                 f"This callcycle reads {ENCODER_FORMAT}.")
    for name, expected in info.get("files", {}).items():
        path = directory / name
        if not path.is_file():
            raise ModelArtifactError(f"Sentence encoder file {path} is missing.",
                                     "Restore models/encoders/ from the repository.")
        if _sha256(path) != expected:
            raise ModelArtifactError(f"Sentence encoder file {path} does not match its checksum.",
                                     "The file was changed or damaged; restore it from the repository.")
    tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
    tokenizer.enable_truncation(int(info.get("max_tokens", 128)))
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
    session_options = ort.SessionOptions()
    if opts.threads:
        session_options.intra_op_num_threads = opts.threads
    session_options.log_severity_level = 3
    session = ort.InferenceSession(str(directory / "model.onnx"), sess_options=session_options,
                                   providers=["CPUExecutionProvider"])
    logger.debug("loaded sentence encoder %s from %s", info.get("name"), directory)
    return SentenceEncoder(directory, info, session, tokenizer, opts)
