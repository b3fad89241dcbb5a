"""Scoring, saliency and edit suggestions for one classifier.

Pure PyTorch / transformers: knows nothing of Django, contractors or attacks.

A snippet is encoded as a text pair, `[CLS] prompt [SEP] completion [SEP]` (or the model's
own equivalent). Token positions below are positions in that encoded sequence; the special
tokens are never editable. The score is the probability that the snippet is injurious, the
sigmoid of the single logit; gradients are taken of the logit (same ranking, and the
probability's gradient vanishes near the small thresholds used in attacks).
"""

from collections import OrderedDict
from dataclasses import dataclass
from threading import Lock

import torch
from transformers import AutoModelForMaskedLM, AutoModelForSequenceClassification, AutoTokenizer

from modelserve.types import InvalidInput, Snippet, Suggestion, TokenSaliency

__all__ = ["Classifier", "InvalidInput", "Snippet", "Suggestion", "TokenSaliency", "pick_device"]


def pick_device() -> torch.device:
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


@dataclass
class _Encoded:
    ids: list[int]
    types: list[int]
    separators: list[int]  # positions of the separator tokens


class Classifier:
    """A loaded classifier (and, optionally, a masked LM sharing its vocabulary)."""

    def __init__(
        self,
        model,
        tokenizer,
        *,
        version: str,
        mlm=None,
        device: torch.device | None = None,
        max_tokens: int = 256,
        batch_size: int = 64,
        cache_size: int = 20_000,
        variant_budget: int | None = None,
        cpu_runtime: str = "onnx",
    ) -> None:
        self.version = version
        self.device = device or pick_device()
        self.tokenizer = tokenizer
        self.model = model.to(self.device).eval()
        for parameter in self.model.parameters():
            parameter.requires_grad_(False)  # inference never needs weight gradients
        self.mlm = mlm.to(self.device).eval() if mlm is not None else None
        self.max_tokens = min(max_tokens, getattr(model.config, "max_position_embeddings", max_tokens))
        self.batch_size = batch_size
        self.autocast = self.device.type == "cuda" and torch.cuda.is_bf16_supported()
        # How many variants one suggestion request may rescore exactly: what keeps the
        # dropdown and the edit map interactive (a CPU scores ~100 snippets a second).
        self.variant_budget = variant_budget or (4096 if self.device.type == "cuda" else 192)
        self._cache: OrderedDict[tuple[int, ...], float] = OrderedDict()
        self._cache_size = cache_size
        self._lock = Lock()
        # On a CPU, scoring runs through ONNX Runtime ("onnx", built on first use) unless "torch".
        if cpu_runtime not in ("onnx", "torch"):
            raise ValueError(f"cpu_runtime must be 'onnx' or 'torch', not {cpu_runtime!r}")
        self._use_onnx = self.device.type == "cpu" and cpu_runtime == "onnx"
        self._onnx = None
        self._onnx_lock = Lock()
        self._vocab_masks()

    @classmethod
    def from_folder(cls, folder, *, version: str, mlm_folder=None, **options) -> "Classifier":
        """Load a Hugging Face checkpoint folder (nothing is downloaded)."""
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=1, local_files_only=True)
        mlm = AutoModelForMaskedLM.from_pretrained(mlm_folder, local_files_only=True) if mlm_folder else None
        if mlm is not None and mlm.config.vocab_size != model.config.vocab_size:
            raise InvalidInput("the masked LM must share the classifier's vocabulary")
        return cls(model, tokenizer, version=version, mlm=mlm, **options)

    # -- vocabulary -------------------------------------------------------------------

    def _vocab_masks(self) -> None:
        """Which vocabulary entries may be offered: never special tokens, and fragments only
        where a fragment was (or a whole word where a word starts)."""
        vocab_size = self.model.get_input_embeddings().weight.shape[0]
        tokens = self.tokenizer.convert_ids_to_tokens(list(range(min(vocab_size, len(self.tokenizer)))))
        tokens += [""] * (vocab_size - len(tokens))
        continuation_marker = "##" if any(t.startswith("##") for t in tokens) else None
        word_marker = "▁" if continuation_marker is None and any(t.startswith("▁") for t in tokens) else None
        special = set(self.tokenizer.all_special_ids)
        usable, word_start = [], []
        for token_id, token in enumerate(tokens):
            usable.append(
                bool(token) and token_id not in special and not (token.startswith("[") and token.endswith("]"))
                and not (token.startswith("<") and token.endswith(">"))
            )
            if continuation_marker:
                word_start.append(not token.startswith(continuation_marker))
            elif word_marker:
                word_start.append(token.startswith(word_marker))
            else:
                word_start.append(True)
        self._usable = torch.tensor(usable, device=self.device)
        self._word_start = torch.tensor(word_start, device=self.device)
        self._special = special

    def _is_word_start(self, token_id: int) -> bool:
        return bool(self._word_start[token_id])

    # -- encoding ---------------------------------------------------------------------

    def _encode(self, snippet: Snippet) -> _Encoded:
        if not snippet.prompt.strip() and not snippet.completion.strip():
            raise InvalidInput("the snippet is empty")
        encoded = self.tokenizer(snippet.prompt, snippet.completion, return_token_type_ids=True)
        ids = encoded["input_ids"]
        if len(ids) > self.max_tokens:
            raise InvalidInput(f"the snippet is {len(ids)} tokens long; the limit is {self.max_tokens}")
        types = encoded.get("token_type_ids") or [0] * len(ids)
        sep = self.tokenizer.sep_token_id  # once: a tokenizer attribute is a lookup each time
        separators = [i for i, t in enumerate(ids) if t == sep]
        return _Encoded(ids=list(ids), types=list(types), separators=separators)

    def _decode(self, ids: list[int], types: list[int]) -> Snippet:
        """Text of an edited sequence, split at the first separator again."""
        sep = self.tokenizer.sep_token_id
        first_sep = ids.index(sep)
        prompt = [t for t in ids[:first_sep] if t not in self._special]
        completion = [t for t in ids[first_sep + 1 :] if t not in self._special]
        decode = self.tokenizer.decode
        return Snippet(decode(prompt).strip(), decode(completion).strip())

    def _editable(self, encoded: _Encoded, index: int) -> bool:
        return 0 <= index < len(encoded.ids) and encoded.ids[index] not in self._special

    # -- scoring ----------------------------------------------------------------------

    def _forward(self, ids: list[list[int]], types: list[list[int]]) -> torch.Tensor:
        """Logits of sequences of token ids, padded to the longest (no strings involved)."""
        width = max(len(row) for row in ids)
        pad = self.tokenizer.pad_token_id or 0
        input_ids = torch.full((len(ids), width), pad, dtype=torch.long)
        token_types = torch.zeros((len(ids), width), dtype=torch.long)
        mask = torch.zeros((len(ids), width), dtype=torch.long)
        for row, (sequence, kinds) in enumerate(zip(ids, types)):
            input_ids[row, : len(sequence)] = torch.tensor(sequence)
            token_types[row, : len(kinds)] = torch.tensor(kinds)
            mask[row, : len(sequence)] = 1
        onnx = self._onnx_scorer()
        if onnx is not None:
            return onnx.logits(input_ids, mask, token_types)[:, 0].float()
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            logits = self.model(
                input_ids=input_ids.to(self.device),
                attention_mask=mask.to(self.device),
                token_type_ids=token_types.to(self.device),
            ).logits
        return logits[:, 0].float().cpu()

    def _onnx_scorer(self):
        if not self._use_onnx or self._onnx is not None:
            return self._onnx
        with self._onnx_lock:  # built once, by the first scoring thread
            if self._onnx is None:
                from modelserve import onnx_scoring

                self._onnx = onnx_scoring.build(self.model, threads=torch.get_num_threads())
                self._use_onnx = self._onnx is not None
            return self._onnx

    def _score_ids(self, ids: list[list[int]], types: list[list[int]]) -> list[float]:
        """Scores of many sequences: cached ones reused, the rest in length-sorted batches."""
        scores: list[float | None] = [None] * len(ids)
        todo = []
        with self._lock:
            for i, sequence in enumerate(ids):
                cached = self._cache.get(tuple(sequence))
                if cached is None:
                    todo.append(i)
                else:
                    scores[i] = cached
        todo.sort(key=lambda i: len(ids[i]))  # similar lengths together: little padding
        for start in range(0, len(todo), self.batch_size):
            chunk = todo[start : start + self.batch_size]
            probabilities = torch.sigmoid(self._forward([ids[i] for i in chunk], [types[i] for i in chunk]))
            for i, probability in zip(chunk, probabilities.tolist()):
                scores[i] = probability
        with self._lock:
            for i in todo:
                self._cache[tuple(ids[i])] = scores[i]
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return scores

    def score(self, snippets: list[Snippet]) -> list[float]:
        encoded = [self._encode(snippet) for snippet in snippets]
        return self._score_ids([e.ids for e in encoded], [e.types for e in encoded])

    # -- gradients ----------------------------------------------------------------------

    def _gradient(self, encoded: _Encoded) -> tuple[float, torch.Tensor]:
        """The logit and its gradient with respect to each token's input embedding.

        One forward and one backward in eval mode; the embeddings are the only leaves that
        require grad, so no weight gradient is computed.
        """
        input_ids = torch.tensor([encoded.ids], device=self.device)
        embeddings = self.model.get_input_embeddings()(input_ids).detach().requires_grad_(True)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            logit = self.model(
                inputs_embeds=embeddings,
                attention_mask=torch.ones_like(input_ids),
                token_type_ids=torch.tensor([encoded.types], device=self.device),
            ).logits[0, 0]
        (gradient,) = torch.autograd.grad(logit, embeddings)
        return float(logit.detach()), gradient[0].float()

    def saliency(self, snippet: Snippet) -> list[TokenSaliency]:
        encoded = self._encode(snippet)
        _, gradient = self._gradient(encoded)
        norms = gradient.norm(dim=-1)
        editable = [i for i in range(len(encoded.ids)) if self._editable(encoded, i)]
        top = max((float(norms[i]) for i in editable), default=0.0) or 1.0
        tokens = self.tokenizer.convert_ids_to_tokens(encoded.ids)
        first_sep = encoded.separators[0] if encoded.separators else len(encoded.ids)
        return [
            TokenSaliency(i, tokens[i], "prompt" if i < first_sep else "completion", float(norms[i]) / top)
            for i in editable
        ]

    # -- suggestions -------------------------------------------------------------------

    def _candidates_first_order(self, gradient_row: torch.Tensor, current_id: int | None, allowed, count: int):
        """Token ids whose swap-in is estimated to lower the logit most: (E_v - E_x) . g."""
        weights = self.model.get_input_embeddings().weight
        estimate = weights.float() @ gradient_row
        if current_id is not None:
            estimate = estimate - estimate[current_id]
        estimate = estimate.masked_fill(~allowed, float("inf"))
        count = min(count, int(allowed.sum()))
        return torch.topk(estimate, count, largest=False).indices.tolist()

    def _candidates_masked_lm(self, encoded: _Encoded, index: int, insert: bool, allowed, count: int):
        ids = list(encoded.ids)
        if insert:
            ids.insert(index, self.tokenizer.mask_token_id)
        else:
            ids[index] = self.tokenizer.mask_token_id
        with torch.inference_mode():
            logits = self.mlm(input_ids=torch.tensor([ids], device=self.device)).logits[0, index].float()
        logits = logits[: allowed.shape[0]].masked_fill(~allowed, float("-inf"))
        count = min(count, int(allowed.sum()))
        return torch.topk(logits, count).indices.tolist()

    def _allowed_for(self, word_start: bool):
        return self._usable & (self._word_start if word_start else ~self._word_start)

    def _rank(self, variants: list[tuple[int, int, list[int], list[int]]], limit: int) -> list[Suggestion]:
        """Score every variant exactly, in one batched pass, lowest score first."""
        scores = self._score_ids([v[2] for v in variants], [v[3] for v in variants])
        ranked = sorted(zip(scores, variants), key=lambda pair: pair[0])[:limit]
        tokens = self.tokenizer.convert_ids_to_tokens([v[1] for _, v in ranked])
        return [
            Suggestion(index=v[0], token=token, token_id=v[1], score=score, snippet=self._decode(v[2], v[3]))
            for (score, v), token in zip(ranked, tokens)
        ]

    def _pool(self, pool: int | None, limit: int) -> int:
        return pool or max(limit, min(64, self.variant_budget // 8))

    def substitutions(
        self, snippet: Snippet, index: int, *, limit: int = 20, pool: int | None = None
    ) -> list[Suggestion]:
        """Replacement tokens for one position, sorted by the exact score they give."""
        encoded = self._encode(snippet)
        if not self._editable(encoded, index):
            raise InvalidInput(f"position {index} cannot be edited")
        pool = self._pool(pool, limit)
        allowed = self._allowed_for(self._is_word_start(encoded.ids[index])).clone()
        allowed[encoded.ids[index]] = False
        if self.mlm is not None:
            candidates = self._candidates_masked_lm(encoded, index, False, allowed, pool)
        else:
            _, gradient = self._gradient(encoded)
            candidates = self._candidates_first_order(gradient[index], encoded.ids[index], allowed, pool)
        variants = []
        for token_id in candidates:
            ids = list(encoded.ids)
            ids[index] = token_id
            variants.append((index, token_id, ids, encoded.types))
        return self._rank(variants, limit)

    def insertions(
        self, snippet: Snippet, gap: int, *, limit: int = 20, pool: int | None = None
    ) -> list[Suggestion]:
        """Whole-word tokens to insert before position `gap`, sorted by the exact score."""
        encoded = self._encode(snippet)
        if not 1 <= gap < len(encoded.ids):
            raise InvalidInput(f"gap {gap} is outside the snippet")
        following = encoded.ids[gap]
        if following not in self._special and not self._is_word_start(following):
            raise InvalidInput(f"gap {gap} would split a word")
        if len(encoded.ids) + 1 > self.max_tokens:
            raise InvalidInput("the snippet is too long to insert into")
        pool = self._pool(pool, limit)
        kind = encoded.types[gap - 1] if encoded.ids[gap - 1] not in self._special else encoded.types[gap]
        allowed = self._allowed_for(True)
        if self.mlm is not None:
            candidates = self._candidates_masked_lm(encoded, gap, True, allowed, pool)
        else:
            # Estimate from a placeholder (the mask or pad token) inserted at the gap.
            placeholder = self.tokenizer.mask_token_id or self.tokenizer.pad_token_id or 0
            probe = _Encoded(
                ids=encoded.ids[:gap] + [placeholder] + encoded.ids[gap:],
                types=encoded.types[:gap] + [kind] + encoded.types[gap:],
                separators=[],
            )
            _, gradient = self._gradient(probe)
            candidates = self._candidates_first_order(gradient[gap], placeholder, allowed, pool)
        variants = [
            (gap, token_id, encoded.ids[:gap] + [token_id] + encoded.ids[gap:],
             encoded.types[:gap] + [kind] + encoded.types[gap:])
            for token_id in candidates
        ]
        return self._rank(variants, limit)

    def edit_map(self, snippet: Snippet, *, per_position: int | None = None) -> list[Suggestion]:
        """The best single substitution at every editable position, exactly scored.

        First-order estimates over the whole vocabulary for all positions at once (one
        matrix product), then the `per_position` best candidates of every position rescored
        exactly in one batched pass (by default as many as the variant budget allows, 1 to 8).
        """
        encoded = self._encode(snippet)
        _, gradient = self._gradient(encoded)
        weights = self.model.get_input_embeddings().weight.float()
        positions = [i for i in range(len(encoded.ids)) if self._editable(encoded, i)]
        if not positions:
            return []
        per_position = per_position or max(1, min(8, self.variant_budget // len(positions)))
        rows = gradient[positions]  # [n, d]
        estimates = rows @ weights.T  # [n, V]
        current = torch.tensor([encoded.ids[i] for i in positions], device=estimates.device)
        estimates = estimates - estimates.gather(1, current[:, None])
        starts = torch.tensor([self._is_word_start(encoded.ids[i]) for i in positions], device=estimates.device)
        allowed = self._usable[None, :] & torch.where(starts[:, None], self._word_start[None, :], ~self._word_start[None, :])
        allowed[torch.arange(len(positions)), current] = False
        estimates = estimates.masked_fill(~allowed, float("inf"))
        best = torch.topk(estimates, min(per_position, weights.shape[0]), dim=1, largest=False)
        variants = []
        for row, index in enumerate(positions):
            for token_id, estimate in zip(best.indices[row].tolist(), best.values[row].tolist()):
                if estimate == float("inf"):
                    continue
                ids = list(encoded.ids)
                ids[index] = token_id
                variants.append((index, token_id, ids, encoded.types))
        ranked = self._rank(variants, len(variants))
        per_index: dict[int, Suggestion] = {}
        for suggestion in ranked:  # lowest score first: the first seen is the best
            per_index.setdefault(suggestion.index, suggestion)
        return [per_index[i] for i in positions if i in per_index]
