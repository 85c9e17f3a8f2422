"""A spaCy text classifier trained by the project, as a baseline model family.

Trains ``spacy.blank("en")`` + ``textcat`` (bag-of-words n-gram architecture, no pretrained
vectors) so its grouped cross-validated macro-F1 can be compared with the scikit-learn
families in the model card. It is compared, not shipped: artifacts hold scikit-learn models
loaded with skops, so a spaCy model would need its own loader.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

__all__ = ["SpacyTextcat"]

_BOW = {
    "@architectures": "spacy.TextCatBOW.v3",
    "exclusive_classes": True,
    "ngram_size": 2,
    "no_output_layer": False,
    "length": 262144,
}


class SpacyTextcat:
    """Fit/predict wrapper over a blank-English spaCy ``textcat`` pipe.

    Parameters:
        epochs: passes over the training texts.
        seed: random seed (shuffling and initialisation).
    """

    def __init__(self, epochs: int = 12, seed: int = 13) -> None:
        self.epochs = epochs
        self.seed = seed

    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> SpacyTextcat:
        import spacy
        from spacy.training import Example
        from thinc.api import fix_random_seed

        fix_random_seed(self.seed)
        self.classes_ = sorted(set(labels))
        nlp = spacy.blank("en")
        textcat = nlp.add_pipe("textcat", config={"model": _BOW})
        for label in self.classes_:
            textcat.add_label(label)
        examples = [Example.from_dict(nlp.make_doc(t.lower()), {"cats": {c: float(c == y) for c in self.classes_}})
                    for t, y in zip(texts, labels)]
        optimizer = nlp.initialize(lambda: examples)
        rng = random.Random(self.seed)
        for _ in range(self.epochs):
            rng.shuffle(examples)
            for start in range(0, len(examples), 32):
                nlp.update(examples[start : start + 32], sgd=optimizer, drop=0.2)
        self.nlp_ = nlp
        return self

    def predict(self, texts: Sequence[str]) -> list[str]:
        return [max(doc.cats, key=doc.cats.get) for doc in self.nlp_.pipe([t.lower() for t in texts])]
