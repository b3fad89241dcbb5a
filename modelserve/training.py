"""Fine-tuning a classifier: the protocol's data rules and a length-bucketed training loop.

Pure PyTorch / transformers (no Django): the training job builds the examples from the
labelling read models and calls `train`.
"""

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from modelserve.batching import pad


@dataclass(frozen=True)
class Example:
    prompt: str
    completion: str
    injurious: bool


@dataclass(frozen=True)
class Progress:
    step: int
    steps: int
    loss: float
    seconds: float

    @property
    def eta_seconds(self) -> float:
        return self.seconds / self.step * (self.steps - self.step) if self.step else math.nan


def upsampling_factor(positives: int, negatives: int) -> float:
    """Injurious snippets are repeated min(5, negatives / positives) times, never below 1."""
    if positives == 0:
        return 1.0
    return max(1.0, min(5.0, negatives / positives))


def upsample(examples: list[Example], *, seed: int) -> list[Example]:
    """Repeat injurious examples by the upsampling factor; a fractional part is a random subset."""
    positives = [e for e in examples if e.injurious]
    factor = upsampling_factor(len(positives), len(examples) - len(positives))
    whole, fraction = int(factor), factor - int(factor)
    extra = random.Random(seed).sample(positives, round(fraction * len(positives))) if fraction else []
    return examples + positives * (whole - 1) + extra


def length_buckets(lengths: list[int], batch_size: int, *, seed: int) -> list[list[int]]:
    """Batches of similar lengths (little padding), in a shuffled order.

    Examples are shuffled, cut into windows of 50 batches, sorted by length inside each
    window and batched; the batches are then shuffled.
    """
    rng = random.Random(seed)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    window = batch_size * 50
    batches = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start : start + window], key=lambda i: lengths[i])
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def _pad(encodings: list[dict], pad_id: int, device) -> dict[str, torch.Tensor]:
    batch = pad([e["input_ids"] for e in encodings], [e.get("token_type_ids") for e in encodings], pad_id)
    return {name: tensor.to(device) for name, tensor in batch.items()}


def train(
    model,
    tokenizer,
    examples: list[Example],
    *,
    epochs: int = 1,
    learning_rate: float = 2e-5,
    batch_size: int = 16,
    max_tokens: int = 256,
    seed: int = 0,
    device: torch.device | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[float]:
    """Fine-tune `model` (a single-logit sequence classifier) with binary cross-entropy.

    Dynamic padding over length buckets; bf16 autocast on CUDA. Returns the loss per step.
    `should_stop` is polled between steps (a cancelled job); it raises `Cancelled`.
    """
    device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(seed)
    model.to(device).train()
    max_tokens = min(max_tokens, getattr(model.config, "max_position_embeddings", max_tokens))  # as inference reads
    encodings = [
        tokenizer(e.prompt, e.completion, truncation=True, max_length=max_tokens, return_token_type_ids=True)
        for e in examples
    ]
    targets = torch.tensor([1.0 if e.injurious else 0.0 for e in examples])
    # fused: one kernel for every parameter's update (on a CPU about a tenth of the step time
    # of the per-tensor loop, which is a tenth of a MiniLM step of 16 x 100 tokens).
    optimiser = torch.optim.AdamW(model.parameters(), lr=learning_rate, fused=True)
    autocast = device.type == "cuda" and torch.cuda.is_bf16_supported()
    loss_function = torch.nn.BCEWithLogitsLoss()
    lengths = [len(e["input_ids"]) for e in encodings]
    plan = [batch for epoch in range(epochs) for batch in length_buckets(lengths, batch_size, seed=seed + epoch)]
    losses, began = [], time.monotonic()
    for step, batch in enumerate(plan, start=1):
        if should_stop is not None and should_stop():
            raise Cancelled(f"stopped at step {step - 1} of {len(plan)}")
        inputs = _pad([encodings[i] for i in batch], tokenizer.pad_token_id or 0, device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            logits = model(**inputs).logits[:, 0]
        loss = loss_function(logits.float(), targets[batch].to(device))
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
        if on_progress is not None:
            on_progress(Progress(step, len(plan), losses[-1], time.monotonic() - began))
    model.eval()
    return losses


class Cancelled(Exception):
    pass
