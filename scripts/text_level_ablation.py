"""Text-level ablation: TF-IDF + cues with and without the MiniLM sentence vectors, on the card's split.

Fits only the text level (one logistic regression per task, labels balanced within each corpus,
AMI weight AW) on the training side of the shipped recipe's split and scores the held-out written
rows (one at a time) and the two AMI real-speech views, so representations can be compared in a
minute or two instead of a full retrain. Environment: EW (encoder weight; 0 = TF-IDF + cues only),
AW (AMI weight), C, TASKS, PW (balancing power), NOCHAR=1 (drop character n-grams).

Usage (from the repository root): EW=0 AW=0.5 python scripts/text_level_ablation.py 10 within
       (argument 1: percent of tag-mapped AMI labels kept; argument 2: weighting modes, comma-separated)
"""
# ruff: noqa: E402, E501, E702, I001  (an experiment script kept as it was run)
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))
from scipy import sparse
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score

from pipeline.classify.benchmark import ami_views
from pipeline.classify.encoder import load_encoder
from pipeline.classify.features import build_feature_union
from pipeline.classify.labels import drop_near_duplicates, load_labelled, load_taxonomy
from pipeline.classify.train import TrainConfig, embed_texts, prepare_external, split_rows
from pipeline.config import DEFAULT_ENCODER

tax=load_taxonomy(Path("labels/taxonomy.toml")); cfg=TrainConfig()
written=load_labelled(sorted(Path("labels/data").glob("*.jsonl")),tax)
ext=load_labelled([Path("labels/external/ami.jsonl.gz")],tax,partial=True)
pct=int(sys.argv[1]) if len(sys.argv)>1 else 10
import os; EW=float(os.environ.get("EW","1.5")); C=float(os.environ.get("C","4"))
e=prepare_external(ext,pct,cfg.context_radius)
kw,_=drop_near_duplicates(written,cfg.dedupe_threshold)
tr,ho=split_rows(kw+e,20)
enc=load_encoder(Path("models/encoders") / DEFAULT_ENCODER)
V=embed_texts(enc,[r.text for r in tr+ho]); Vtr,Vho=V[:len(tr)],V[len(tr):]
fu=build_feature_union().fit([r.text for r in tr])
if os.environ.get("NOCHAR"):
    fu.transformer_list=[(n,t) for n,t in fu.transformer_list if n!="char"]
Xtr=sparse.hstack([fu.transform([r.text for r in tr]), sparse.csr_matrix(Vtr*EW)]).tocsr()
Xho=sparse.hstack([fu.transform([r.text for r in ho]), sparse.csr_matrix(Vho*EW)]).tocsr()
hw=[i for i,r in enumerate(ho) if r.corpus=="written"]
hami=[r for r in ho if r.corpus=="ami"]; ami_idx=[i for i,r in enumerate(ho) if r.corpus=="ami"]
views=ami_views(hami, one_at_a_time=False)  # the text level reads every act alone anyway
def weights(task, mode):
    y=[r.labels.get(task) for r in tr]; c=[r.corpus for r in tr]
    AW=float(os.environ.get("AW","1"))
    w=np.array([AW if ci=="ami" else 1.0 for ci in c])
    if mode=="within":
        from collections import Counter
        cnt=Counter((ci,yi) for ci,yi in zip(c,y) if yi is not None); tot=Counter(ci for ci,yi in zip(c,y) if yi is not None)
        k={ci:len({yy for (cc,yy) in cnt if cc==ci}) for ci in tot}
        PW=float(os.environ.get("PW","1"))
        w=np.array([wi*(tot[ci]/(k[ci]*cnt[(ci,yi)]))**PW if yi is not None else 0 for wi,ci,yi in zip(w,c,y)])
    return w
for mode in sys.argv[2].split(","):
  for task in os.environ.get("TASKS","talk_action,stage").split(","):
    idx=[i for i,r in enumerate(tr) if task in r.labels]
    y=np.array([tr[i].labels[task] for i in idx])
    w=weights(task, mode)[idx]
    t=time.time()
    lr=LogisticRegression(C=C,max_iter=2000,class_weight=None if mode=="within" else "balanced").fit(Xtr[idx],y,sample_weight=w)
    out=[mode,task,f"{time.time()-t:.0f}s"]
    hi=[i for i in hw if task in ho[i].labels]; out.append(("written",round(f1_score([ho[i].labels[task] for i in hi], lr.predict(Xho[hi]),average="macro"),3)))
    P=lr.predict(Xho[ami_idx])
    for v in views:
        sc=[j for j in v.scored if task in hami[j].labels]
        out.append((v.name[15:40], round(f1_score([hami[j].labels[task] for j in sc],[P[j] for j in sc],average="macro"),3)))
        if task=="talk_action":
            from sklearn.metrics import precision_recall_fscore_support as prf
            p_,r_,_,_=prf([hami[j].labels[task] for j in sc],[P[j] for j in sc],labels=["action"])
            out.append(("act P/R", round(p_[0],2), round(r_[0],2)))
    print(*out, flush=True)
