"""The demo baseline against a bag-of-words logistic regression on the demo's held-out split.

    VAR_DIR=... SQLITE_PATH=... .venv/bin/python bench/demo_baseline.py

Run after `manage.py demo` (which trains the baseline on the train split). Both models learn
from the same train snippets and are scored on the same test snippets; each one's ROC AUC and
its false negative rate at a 10 % false positive rate are printed side by side.
"""

import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")


def fnr_at_fpr(labels: np.ndarray, scores: np.ndarray, fpr: float) -> float:
    negatives = np.sort(scores[~labels])
    threshold = negatives[int(np.ceil((1 - fpr) * len(negatives))) - 1]
    return float(np.mean(scores[labels] <= threshold))


def main() -> None:
    import django

    django.setup()
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    from modelserve.interface import SnippetText, inference
    from modelserve.models import ClassifierVersion

    demo = Path(__file__).resolve().parents[1] / "demo" / "data" / "snippets.jsonl"
    records = [json.loads(line) for line in demo.read_text().splitlines() if line]
    train = [r for r in records if r["split"] == "train"]
    test = [r for r in records if r["split"] == "test"]
    labels = np.array([r["label"] == "injurious" for r in test])

    text = lambda r: f"{r['prompt']} {r['completion']}"  # noqa: E731
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True)
    features = vectorizer.fit_transform([text(r) for r in train])
    bow = LogisticRegression(max_iter=2000, C=10.0).fit(features, [r["label"] == "injurious" for r in train])
    bow_scores = bow.predict_proba(vectorizer.transform([text(r) for r in test]))[:, 1]

    version = ClassifierVersion.objects.get(promoted=True).version
    ours = np.array(inference().score(version, [SnippetText(r["prompt"], r["completion"]) for r in test]))

    print(f"demo test split: {len(test)} snippets, {labels.sum()} injurious; trained on {len(train)}")
    print(f"{'model':<32} {'ROC AUC':>8} {'FNR at 10% FPR':>15}")
    for name, scores in ((f"{version} (MiniLM, fine-tuned)", ours), ("bag of words + logistic regression", bow_scores)):
        print(f"{name:<32} {roc_auc_score(labels, scores):>8.3f} {fnr_at_fpr(labels, scores, 0.10):>15.3f}")


if __name__ == "__main__":
    main()
