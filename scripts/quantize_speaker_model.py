"""Quantise the CAM++ speaker model to int8 (static, per channel), once, outside the runtime.

Two steps, two environments (callcycle's own environment has no ``onnx`` package)::

    # 1. calibration windows, in callcycle's environment: fbank windows of generated speech
    python scripts/make_bench_calls.py --set stability
    python scripts/quantize_speaker_model.py windows --out /tmp/calib.npz

    # 2. the quantisation, in a scratch venv with onnx and onnxruntime
    python3.11 -m venv /tmp/quant-venv
    /tmp/quant-venv/bin/pip install onnx onnxruntime==1.32.0 numpy
    /tmp/quant-venv/bin/python scripts/quantize_speaker_model.py quantize --windows /tmp/calib.npz

Why: the network is three quarters of diarization's cost, and onnxruntime's integer convolution
with static (calibrated) activation scales runs the 1.5-s windows in about half the float
model's CPU time on the 2-core benchmark machine (BENCHMARKS.md, diarization section). Dynamic
quantisation was tried earlier and was four times *slower* (``ConvInteger``).

Calibration material is generated speech only (the stability calls of
``scripts/make_bench_calls.py``, both channels: espeak-ng voices), never a recording the
diarization benchmark scores. Activation ranges are min/max over 256 windows of 1.5 s
(150 frames, hop 0.5 s, mean-subtracted as at run time). Weights are int8 per output channel,
activations uint8, QDQ format (onnxruntime fuses it into ``QLinearConv``).

Step 2 writes ``models/speaker/campplus_cn_en_common.int8.onnx`` and records its sha256, the
calibration set's sha256 and the cosine between int8 and float embeddings of held-back
windows in ``models/speaker/card.json`` (``int8``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SPEAKER = ROOT / "models" / "speaker"
FLOAT_MODEL = SPEAKER / "campplus_cn_en_common.onnx"
INT8_MODEL = SPEAKER / "campplus_cn_en_common.int8.onnx"
CALLS = ("stab-01", "stab-02", "stab-03", "stab-04")
FRAMES, HOP = 150, 50
N_CALIBRATION, N_CHECK = 256, 128


def windows(out: Path, bench_data: Path) -> None:
    """Mean-subtracted fbank windows of the generated calls' speech, seeded shuffle, saved to ``out``."""
    sys.path.insert(0, str(ROOT))
    from pipeline.ingest.audio import load_audio
    from pipeline.speech.diarize import _FBANK, detect_speech
    from pipeline.speech.fbank import compute_fbank

    found: list[np.ndarray] = []
    for name in CALLS:
        wav = bench_data / f"{name}.wav"
        if not wav.is_file():
            raise SystemExit(f"{wav} is missing: run python scripts/make_bench_calls.py --set stability first")
        audio = load_audio(wav)
        for channel in audio.samples:
            for start_s, end_s in detect_speech(channel):
                fb = compute_fbank(channel[int(start_s * 16000) : int(end_s * 16000)], _FBANK)
                for k in range(0, fb.shape[0] - FRAMES + 1, HOP):
                    w = fb[k : k + FRAMES]
                    found.append(w - w.mean(axis=0, keepdims=True))
    stack = np.stack(found).astype(np.float32)
    np.random.default_rng(20261203).shuffle(stack)
    if stack.shape[0] < N_CALIBRATION + N_CHECK:
        raise SystemExit(f"only {stack.shape[0]} windows; need {N_CALIBRATION + N_CHECK}")
    np.savez(out, calibration=stack[:N_CALIBRATION], check=stack[N_CALIBRATION : N_CALIBRATION + N_CHECK])
    print(f"{stack.shape[0]} windows from {len(CALLS)} calls; saved {N_CALIBRATION} + {N_CHECK} to {out}")


def quantize(windows_file: Path) -> None:
    """Static int8 quantisation of the float model, checked against it, recorded in the card."""
    import onnxruntime as ort
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    data = np.load(windows_file)
    calibration, check = data["calibration"], data["check"]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.at = 0

        def get_next(self) -> dict[str, np.ndarray] | None:
            if self.at >= calibration.shape[0]:
                return None
            batch = calibration[self.at : self.at + 8]
            self.at += 8
            return {"feats": batch}

    prepared = INT8_MODEL.with_suffix(".prep.onnx")
    try:
        quant_pre_process(str(FLOAT_MODEL), str(prepared), skip_symbolic_shape=True)
        quantize_static(str(prepared), str(INT8_MODEL), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        op_types_to_quantize=["Conv", "MatMul", "Gemm"], calibrate_method=CalibrationMethod.MinMax)
    finally:
        prepared.unlink(missing_ok=True)

    def embed(path: Path) -> np.ndarray:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        out = np.concatenate([session.run(["embedding"], {"feats": check[k : k + 16]})[0]
                              for k in range(0, check.shape[0], 16)])
        return out / np.linalg.norm(out, axis=1, keepdims=True)

    cosine = (embed(FLOAT_MODEL) * embed(INT8_MODEL)).sum(axis=1)
    print(f"cosine int8 vs float on {check.shape[0]} held-back windows: min {cosine.min():.4f}, "
          f"mean {cosine.mean():.4f}")
    if cosine.mean() < 0.95:
        raise SystemExit("the int8 model drifted too far from the float one; not recorded")
    card_path = SPEAKER / "card.json"
    card = json.loads(card_path.read_text(encoding="utf-8"))
    card["int8"] = {
        "file": INT8_MODEL.name,
        "sha256": hashlib.sha256(INT8_MODEL.read_bytes()).hexdigest(),
        "method": "onnxruntime quantize_static: QDQ, weights int8 per channel, activations uint8, "
                  "Conv/MatMul/Gemm, min/max calibration",
        "calibration": f"{calibration.shape[0]} windows of {FRAMES} frames from generated calls "
                       f"{', '.join(CALLS)} (scripts/make_bench_calls.py --set stability)",
        "calibration_sha256": hashlib.sha256(calibration.tobytes()).hexdigest(),
        "cosine_to_float": {"windows": int(check.shape[0]), "min": round(float(cosine.min()), 4),
                            "mean": round(float(cosine.mean()), 4)},
        "onnxruntime_version": ort.__version__,
    }
    card_path.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(card["int8"], indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    steps = parser.add_subparsers(dest="step", required=True)
    w = steps.add_parser("windows", help="calibration windows (callcycle's environment)")
    w.add_argument("--out", type=Path, required=True)
    w.add_argument("--bench-data", type=Path, default=ROOT / "bench-data")
    q = steps.add_parser("quantize", help="quantise and check (scratch venv with onnx)")
    q.add_argument("--windows", type=Path, required=True)
    args = parser.parse_args()
    if args.step == "windows":
        windows(args.out, args.bench_data)
    else:
        quantize(args.windows)


if __name__ == "__main__":
    main()
