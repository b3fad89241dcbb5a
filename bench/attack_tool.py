"""The rewrite tool against the demo baseline: a scripted attacker, today's tool beside the new.

    VAR_DIR=/tmp/demo SQLITE_PATH=/tmp/demo/db.sqlite3 .venv/bin/python bench/attack_tool.py

Run after `manage.py demo` (the demo baseline, `demo-baseline`). "Today's tool" is the inference
code of `--baseline-rev` (default: the commit before the word-level tool), read from git into a
package of its own, scoring the same checkpoint in the same process.

The scripted attacker starts from each of the demo's injurious snippets that the baseline
scores at or above the threshold, asks the tool's best-edit map, applies the lowest-scoring
offered edit, and stops below the threshold or after 5 edits. With the new tool it applies the
lowest-scoring offered edit that also keeps the text at the similarity setting or above from
the original (every offered edit keeps it from the text before that edit). The threshold is
the 30th percentile of the baseline's scores on those snippets (the demo campaign's 0.05 is
printed too: the baseline scores no injurious snippet that low, so it cannot tell tools apart).

Printed per tool: the share of snippets ending below the threshold, how many of those end at the
similarity setting or above from the original ("kept meaning"), edits per success, the
mean similarity of the final text to the original (the window measure of
`modelserve/similarity.py`, for both tools), the share of offered words in wordfreq's 50,000
most frequent English words; then the dropdown and the edit map's times on a 60-word snippet,
each beside today's implementation.
"""

import argparse
import importlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.append(str(ROOT / "bench"))  # after ROOT: bench/evaluation.py must not hide the app
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

BASELINE_REV = "cde6481"  # the token-level tool (the last commit before the word-level one)
MAX_EDITS = 5


def load_todays_tool(rev: str):
    """Today's modelserve inference modules, as a package named `baseline_tool`."""
    folder = Path(tempfile.mkdtemp()) / "baseline_tool"
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    for name in ("inference", "types", "onnx_scoring"):
        source = subprocess.run(["git", "show", f"{rev}:modelserve/{name}.py"], cwd=ROOT, check=True,
                                capture_output=True, text=True).stdout
        (folder / f"{name}.py").write_text(source.replace("from modelserve.", "from baseline_tool."))
    sys.path.insert(0, str(folder.parent))
    return importlib.import_module("baseline_tool.inference")


def attack(snippet, edit_map, score, threshold, keep):
    """The scripted attacker: the lowest-scoring offered edit that `keep` accepts, up to 5 times."""
    current, offered_words, edits = snippet, [], 0
    for _ in range(MAX_EDITS):
        offered = edit_map(current)
        offered_words += [word for word, _ in offered]
        candidates = sorted((s for _, s in offered if keep(s.snippet)), key=lambda s: s.score)
        if not candidates:
            break
        current, edits = candidates[0].snippet, edits + 1
        if candidates[0].score < threshold:
            return current, edits, True, offered_words
    return current, edits, score(current) < threshold, offered_words


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline-rev", default=BASELINE_REV)
    parser.add_argument("--limit", type=int, default=0, help="attack only the first N snippets (0: all)")
    parser.add_argument("--percentile", type=int, default=30,
                        help="the threshold: this percentile of the baseline's scores on injurious snippets")
    parser.add_argument("--threshold", type=float, default=None, help="a threshold of its own instead")
    args = parser.parse_args()

    import django

    django.setup()
    import torch
    import wordfreq
    from django.conf import settings
    from modelserve_cpu import p50

    from attacks.models import Campaign
    from modelserve.inference import Classifier, SnippetText
    from modelserve.models import ClassifierVersion
    from modelserve.similarity import shared_encoder, similarities_to
    from modelserve.words import words_of

    torch.set_num_threads(os.cpu_count() or 2)
    folder = ClassifierVersion.objects.get(version="demo-baseline").checkpoint_dir
    new = Classifier.from_folder(folder, version="new", device=torch.device("cpu"))
    todays = load_todays_tool(args.baseline_rev).Classifier.from_folder(folder, version="today",
                                                                           device=torch.device("cpu"))
    encoder, floor = shared_encoder(), settings.MODELSERVE_MIN_SIMILARITY
    english = set(wordfreq.top_n_list("en", 50_000))

    records = [json.loads(line) for line in (ROOT / "demo/data/snippets.jsonl").read_text().splitlines()]
    injurious = [SnippetText(r["prompt"], r["completion"]) for r in records if r["label"] == "injurious"]
    scores = new.score(injurious)
    threshold = args.threshold or float(statistics.quantiles(scores, n=100)[args.percentile - 1])
    campaign = Campaign.objects.filter(name__startswith="Demo").first()
    campaign_threshold = campaign.threshold if campaign else 0.05
    print(f"demo baseline on the demo's {len(injurious)} injurious snippets: lowest score {min(scores):.4f}; "
          f"the demo campaign's threshold {campaign_threshold:g} ({sum(s < campaign_threshold for s in scores)} "
          "of them below it)")
    starts = [s for s, score in zip(injurious, scores) if score >= threshold][: args.limit or None]
    print(f"threshold for this run: {threshold:.4f} ({'given' if args.threshold else f'percentile {args.percentile}'})"
          f"; attacked: {len(starts)} snippets at or "
          f"above it, up to {MAX_EDITS} edits each, the lowest-scoring edit of the best-edit map each time\n")
    assert abs(todays.score(starts[:8])[0] - new.score(starts[:8])[0]) < 1e-5  # the same classifier

    tools = {
        "today's tool": (lambda s: [(t.token, t) for t in todays.edit_map(s)], todays.score, lambda edited: True),
        "new tool": (lambda s: [(e.word, e) for e in new.edit_map(s)], new.score,
                     None),  # set per snippet: similarity to its original
    }
    print(f"{'tool':<14} {'below threshold':>16} {'kept meaning':>13} {'edits/success':>14} {'similarity':>11} "
          f"{'real words':>11}")
    results = {}
    for name, (edit_map, score, keep) in tools.items():
        successes, kept, edits, similarity, offered = 0, 0, [], [], []
        for original in starts:
            if keep is None:
                rule = lambda edited, o=original: similarities_to(encoder, o, [edited])[0] >= floor  # noqa: E731
            else:
                rule = keep
            final, used, won, words = attack(original, edit_map, lambda s, f=score: f([s])[0], threshold, rule)
            successes += won
            edits += [used] if won else []
            similarity += similarities_to(encoder, original, [final])
            kept += won and similarity[-1] >= floor
            offered += words
        real = sum(w.lower() in english for w in offered) / max(1, len(offered))
        results[name] = (successes, kept, min(similarity))
        print(f"{name:<14} {successes:>5}/{len(starts):<3} {successes / len(starts):>6.0%} {kept:>13} "
              f"{statistics.mean(edits) if edits else float('nan'):>14.2f} {statistics.mean(similarity):>11.3f} "
              f"{real:>10.1%}   (lowest final similarity {min(similarity):.3f}, {len(offered)} words offered)")
    (today_wins, today_kept, _), (_, new_kept, lowest) = results["today's tool"], results["new tool"]
    print(f"goal: as many successes as today's tool, every final text at {floor:.2f} or more: new {new_kept} "
          f"(lowest final similarity {lowest:.3f}) vs today's {today_kept} at {floor:.2f} or more "
          f"({today_wins} counting texts that no longer say the same)\n")

    sixty = max(injurious, key=lambda s: len(words_of(s)))
    words = words_of(sixty)
    salient = max(new.saliency(sixty), key=lambda w: w.saliency)
    token = next(t.index for t in todays.saliency(sixty) if t.token == salient.word.lower())
    for _ in range(2):  # warm both: runtime, encoder, caches of the unedited text
        new._cache.clear(), todays._cache.clear()
        new.substitutions(sixty, salient.index, limit=15), todays.substitutions(sixty, token, limit=15)

    def fresh(fn):  # as for a new text: no score or embedding is served from a cache
        return lambda: (new._cache.clear(), todays._cache.clear(), encoder._cache.clear(), fn())

    ours = p50(fresh(lambda: new.substitutions(sixty, salient.index, limit=15)), 7)
    theirs = p50(fresh(lambda: todays.substitutions(sixty, token, limit=15)), 7)
    print(f"60-word snippet ({len(words)} words), substitutions for '{salient.word}':")
    print(f"  suggestions p50: new {ours:.0f} ms, today's {theirs:.0f} ms ({ours / theirs:.2f}x)   goal <= 400 ms")
    ours = p50(fresh(lambda: new.edit_map(sixty)), repeat=5)
    theirs = p50(fresh(lambda: todays.edit_map(sixty)), repeat=5)
    print(f"  edit map p50:    new {ours:.0f} ms, today's {theirs:.0f} ms ({ours / theirs:.2f}x)   goal <= 2000 ms")


if __name__ == "__main__":
    main()
