"""Scoring, saliency and the rewrite tool's edit suggestions for one classifier.

Pure PyTorch / transformers: knows nothing of Django, contractors or attacks.

A snippet is encoded as a text pair, `[CLS] prompt [SEP] completion [SEP]` (or the model's own
equivalent). The score is the probability that the snippet is injurious, the sigmoid of the
single logit; gradients are taken of the logit (same ranking, and the probability's gradient
vanishes near the small thresholds used in attacks).

The rewrite tool works on words as the author wrote them (`words.py`): saliency is given per
word, a substitution replaces one whole word and an insertion adds one word after a word,
spliced into the author's text. Candidates (`candidates.py`) are kept only where the edited
sentence stays similar to the sentence before the edit (`similarity.py`), then ranked by the
classifier's exact score of the edited text.
"""

import functools
from collections import OrderedDict
from dataclasses import dataclass
from itertools import chain, zip_longest
from threading import Lock

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from modelserve.batching import pad
from modelserve.candidates import MaskedLM, Neighbours, WordVocabulary, by_gradient
from modelserve.errors import BadCheckpoint
from modelserve.similarity import SentenceEncoder, shared_encoder, similarities_to
from modelserve.types import InvalidInput, SnippetText, Suggestion, WordSaliency
from modelserve.words import Word, insert_after, match_case, substitute, word_at, words_of

__all__ = ["Classifier", "InvalidInput", "SnippetText", "Suggestion", "WordSaliency", "load_trained", "pick_device"]

DEFAULT_MIN_SIMILARITY = 0.80


def pick_device(name: str = "") -> torch.device:
    """The device called ``name`` ("cpu", "cuda", "cuda:1"); "": a GPU when one is visible, else the CPU."""
    if not name:
        return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"MODELSERVE_DEVICE={name!r} is not a device: use cpu, cuda or cuda:N") from None
    if device.type == "cuda" and (not torch.cuda.is_available() or (device.index or 0) >= torch.cuda.device_count()):
        raise ValueError(f"MODELSERVE_DEVICE={name!r}, but this machine has no such GPU")
    return device


def load_trained(folder):
    """A checkpoint's single-logit classifier, refused unless its classification head was saved
    with it: a head made up at load time would be new random weights at every load, and the
    same text would score differently in every process."""
    try:
        model, info = AutoModelForSequenceClassification.from_pretrained(
            folder, num_labels=1, local_files_only=True, output_loading_info=True)
    except (OSError, ValueError, RuntimeError) as exc:  # RuntimeError: a head of another shape
        raise BadCheckpoint(f"{folder} cannot be loaded as a single-score classifier: {exc}") from None
    untrained = sorted(set(info.get("missing_keys") or ()) | {k[0] if isinstance(k, tuple) else k
                                                              for k in info.get("mismatched_keys") or ()})
    if untrained:
        raise BadCheckpoint(
            f"{folder} has no trained single-score classification head (missing: {', '.join(untrained)}): "
            "register a checkpoint saved after fine-tuning (a training run registers its own)")
    return model


def _float32_head(model, device_type: str) -> None:
    """Run the classification head (and BERT's pooler) in float32 with autocast off: near the
    attack thresholds (scores of 0.002) one bf16 step of the logit is ~3 % of the score."""
    base = getattr(model, model.base_model_prefix, None)
    heads = [child for child in model.children() if child is not base]
    if base is not None and getattr(base, "pooler", None) is not None:
        heads.append(base.pooler)
    for module in heads:
        forward = module.forward

        @functools.wraps(forward)
        def in_float32(*args, _forward=forward, **kwargs):
            as_float = lambda v: v.float() if torch.is_tensor(v) and v.is_floating_point() else v  # noqa: E731
            with torch.autocast(device_type, enabled=False):
                return _forward(*map(as_float, args), **{k: as_float(v) for k, v in kwargs.items()})

        module.forward = in_float32


@dataclass
class _Encoded:
    ids: list[int]
    types: list[int]
    words: list[Word]
    spans: list[list[int]]  # each word's token positions (empty: no token of its own)


@dataclass(frozen=True)
class _Variant:
    word: Word
    written: str
    sources: tuple[str, ...]
    snippet: SnippetText


class Classifier:
    """A loaded classifier, with what its rewrite tool needs: a sentence encoder for the
    similarity constraint (by default the shipped MiniLM, loaded on first use) and, optionally,
    a masked LM."""

    def __init__(
        self,
        model,
        tokenizer,
        *,
        version: str,
        encoder: SentenceEncoder | None = None,
        encoder_folder: str | None = None,
        min_similarity: float = DEFAULT_MIN_SIMILARITY,
        masked_lm: MaskedLM | None = None,
        device: torch.device | None = None,
        autocast: bool | None = None,
        max_tokens: int = 256,
        batch_size: int = 64,
        cache_size: int = 20_000,
        variant_budget: int | None = None,
        cpu_runtime: str = "onnx",
    ) -> None:
        if not getattr(tokenizer, "is_fast", False):
            raise InvalidInput("the classifier's tokenizer must be a fast tokenizer (it maps tokens to the text)")
        self.version = version
        self.device = device or pick_device()
        self.tokenizer = tokenizer
        self.model = model.to(self.device).eval()
        for parameter in self.model.parameters():
            parameter.requires_grad_(False)  # inference never needs weight gradients
        self.max_tokens = min(max_tokens, getattr(model.config, "max_position_embeddings", max_tokens))
        self.batch_size = batch_size
        if autocast is None:
            autocast = self.device.type == "cuda" and torch.cuda.is_bf16_supported()
        self.autocast = autocast  # bf16 for the encoder; the head stays in float32
        _float32_head(self.model, self.device.type)
        self._encoder, self._encoder_folder = encoder, encoder_folder
        self.min_similarity = min_similarity
        self.masked_lm = masked_lm
        # How many edited snippets the edit map (and a quarter of it, one dropdown) may score
        # exactly: what keeps them interactive (a CPU scores ~100 snippets a second).
        self.variant_budget = variant_budget or (4096 if self.device.type == "cuda" else 192)
        self.dropdown_budget = max(1, self.variant_budget // 4)
        # How many edited windows the edit map may embed for the similarity check (a CPU embeds
        # ~1,500 of them a second): more candidates per word on short snippets than on long ones.
        self.window_budget = 16 * self.variant_budget if self.device.type == "cuda" else 1200
        embeddings = self.model.get_input_embeddings().weight
        self.vocabulary = WordVocabulary(tokenizer, embeddings.shape[0])
        self.neighbours = Neighbours(self.vocabulary, embeddings.detach())
        self._cache: OrderedDict[tuple[int, ...], float] = OrderedDict()
        self._cache_size = cache_size
        self._lock = Lock()
        # On a CPU, scoring runs through ONNX Runtime ("onnx", built on first use) unless "torch".
        if cpu_runtime not in ("onnx", "torch"):
            raise ValueError(f"cpu_runtime must be 'onnx' or 'torch', not {cpu_runtime!r}")
        self._use_onnx = self.device.type == "cpu" and cpu_runtime == "onnx" and not autocast
        self._onnx = None
        self._onnx_lock = Lock()

    @classmethod
    def from_folder(cls, folder, *, version: str, mlm_folder=None, **options) -> "Classifier":
        """Load a Hugging Face checkpoint folder with a trained head (nothing is downloaded)."""
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        model = load_trained(folder)
        masked_lm = MaskedLM.from_folder(mlm_folder) if mlm_folder else None
        return cls(model, tokenizer, version=version, masked_lm=masked_lm, **options)

    @property
    def encoder(self) -> SentenceEncoder:
        if self._encoder is None:
            self._encoder = shared_encoder(self._encoder_folder)
        return self._encoder

    # -- encoding ---------------------------------------------------------------------

    def _encode_many(self, snippets: list[SnippetText]) -> tuple[list[list[int]], list[list[int]]]:
        for snippet in snippets:
            if not snippet.prompt.strip() and not snippet.completion.strip():
                raise InvalidInput("the snippet is empty")
        encoded = self.tokenizer([s.prompt for s in snippets], [s.completion for s in snippets],
                                 return_token_type_ids=True)
        ids = encoded["input_ids"]
        for row in ids:
            if len(row) > self.max_tokens:
                raise InvalidInput(f"the snippet is {len(row)} tokens long; the limit is {self.max_tokens}")
        return ids, encoded.get("token_type_ids") or [[0] * len(row) for row in ids]

    def _encode(self, snippet: SnippetText) -> _Encoded:
        """One snippet with its words and the tokens that make up each word."""
        [ids], [types] = self._encode_many([snippet])
        encoding = self.tokenizer(snippet.prompt, snippet.completion, return_offsets_mapping=True)
        words = words_of(snippet)
        owner = {part: [-1] * len(text) for part, text in (("prompt", snippet.prompt),
                                                            ("completion", snippet.completion))}
        for word in words:
            owner[word.part][word.start : word.end] = [word.index] * (word.end - word.start)
        spans: list[list[int]] = [[] for _ in words]
        for position, (sequence, (start, end)) in enumerate(zip(encoding.sequence_ids(), encoding["offset_mapping"])):
            if sequence is None or start >= end:
                continue
            chars = owner["prompt" if sequence == 0 else "completion"][start:end]
            index = next((w for w in chars if w >= 0), -1)
            if index >= 0:
                spans[index].append(position)
        return _Encoded(ids=list(ids), types=list(types), words=words, spans=spans)

    # -- scoring ----------------------------------------------------------------------

    def _forward(self, ids: list[list[int]], types: list[list[int]]) -> torch.Tensor:
        """Logits of sequences of token ids, padded to the longest (no strings involved)."""
        batch = pad(ids, types, self.tokenizer.pad_token_id or 0)
        input_ids, mask, token_types = batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]
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

    def score(self, snippets: list[SnippetText]) -> list[float]:
        if not snippets:
            return []
        return self._score_ids(*self._encode_many(snippets))

    def warm(self) -> None:
        """Do once what the first request would: build the CPU runtime, load the sentence encoder."""
        sample = SnippetText("The knight rode home through the forest.", "He slipped and broke his arm.")
        self.score([sample])
        self.substitutions(sample, len(words_of(sample)) - 1, limit=1, pool=2)

    # -- gradients ----------------------------------------------------------------------

    def _gradient(self, ids: list[int], types: list[int]) -> torch.Tensor:
        """The gradient of the logit with respect to each token's input embedding.

        One forward and one backward in eval mode; the embeddings are the only leaves that
        require grad, so no weight gradient is computed.
        """
        input_ids = torch.tensor([ids], device=self.device)
        embeddings = self.model.get_input_embeddings()(input_ids).detach().requires_grad_(True)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            logit = self.model(
                inputs_embeds=embeddings,
                attention_mask=torch.ones_like(input_ids),
                token_type_ids=torch.tensor([types], device=self.device),
            ).logits[0, 0]
        (gradient,) = torch.autograd.grad(logit, embeddings)
        return gradient[0].float()

    def saliency(self, snippet: SnippetText) -> list[WordSaliency]:
        encoded = self._encode(snippet)
        gradient = self._gradient(encoded.ids, encoded.types)
        norms = [float(gradient[span].norm()) if span else 0.0 for span in encoded.spans]
        top = max(norms, default=0.0) or 1.0
        return [
            WordSaliency(w.index, w.text, w.part, w.start, w.end, norm / top, w.insertable_after)
            for w, norm in zip(encoded.words, norms)
        ]

    # -- suggestions -------------------------------------------------------------------

    def _embeddings(self) -> torch.Tensor:
        return self.model.get_input_embeddings().weight.detach()

    def _pool(self, pool: int | None, limit: int) -> int:
        return pool or max(limit, 64)

    def _variants(self, snippet: SnippetText, word: Word, proposals: dict[str, list[str]], *, insert: bool):
        """Edited snippets, one per distinct proposed word, the sources taken in turn."""
        forms: dict[str, str] = {}  # lower case -> the word as first proposed (a cased vocabulary keeps "Paris")
        for candidate in chain.from_iterable(zip_longest(*proposals.values())):
            if candidate is not None:
                forms.setdefault(candidate.lower(), candidate)
        sources: dict[str, list[str]] = {lowered: [] for lowered in forms}
        for source, candidates in proposals.items():
            for candidate in candidates:
                sources[candidate.lower()].append(source)
        variants = []
        for lowered, found_by in sources.items():
            if not insert and lowered == word.text.lower():
                continue
            written = forms[lowered] if insert else match_case(forms[lowered], word)
            edited = insert_after(snippet, word, written) if insert else substitute(snippet, word, written)
            variants.append(_Variant(word, written, tuple(dict.fromkeys(found_by)), edited))
        return variants

    def _similar(self, snippet: SnippetText, variants: list[_Variant]) -> list[tuple[_Variant, float]]:
        """The variants whose edited sentence stays similar enough, with that similarity."""
        similarities = similarities_to(self.encoder, snippet, [v.snippet for v in variants])
        return [(v, s) for v, s in zip(variants, similarities) if s >= self.min_similarity]

    def _ranked(self, kept: list[tuple[_Variant, float]], kind: str, limit: int) -> list[Suggestion]:
        """Score every kept variant exactly, in one batched pass, lowest score first."""
        if not kept:
            return []
        scores = self._score_ids(*self._encode_many([v.snippet for v, _ in kept]))
        offered = [
            Suggestion(index=v.word.index, kind=kind, original=v.word.text, word=v.written, sources=v.sources,
                       score=score, similarity=similarity, snippet=v.snippet)
            for (v, similarity), score in zip(kept, scores)
        ]
        return sorted(offered, key=lambda s: s.score)[:limit]

    def substitutions(self, snippet: SnippetText, index: int, *, limit: int = 20, pool: int | None = None
                      ) -> list[Suggestion]:
        """Whole words to put in place of word `index`, lowest exact score first."""
        encoded = self._encode(snippet)
        word = word_at(encoded.words, index)
        pool = self._pool(pool, limit)
        proposals: dict[str, list[str]] = {}
        if span := encoded.spans[index]:
            gradient = self._gradient(encoded.ids, encoded.types)
            proposals["gradient"] = by_gradient(self.vocabulary, self._embeddings(), gradient[span[:1]], pool,
                                                [word.text])[0]
            proposals["neighbours"] = self.neighbours.of([[encoded.ids[p] for p in span]], gradient[span[:1]],
                                                         pool, [word.text])[0]
        if self.masked_lm is not None:
            proposals["masked_lm"] = self.masked_lm.fill(snippet, word, insert=False, count=pool)
        kept = self._similar(snippet, self._variants(snippet, word, proposals, insert=False))
        return self._ranked(kept[: self.dropdown_budget], "substitution", limit)

    def insertions(self, snippet: SnippetText, index: int, *, limit: int = 20, pool: int | None = None
                   ) -> list[Suggestion]:
        """Whole words to insert right after word `index`, lowest exact score first."""
        encoded = self._encode(snippet)
        word = word_at(encoded.words, index)
        if not word.insertable_after:
            raise InvalidInput(f"no word can be inserted right after {word.text!r}")
        if len(encoded.ids) + 1 > self.max_tokens:
            raise InvalidInput("the snippet is too long to insert into")
        pool = self._pool(pool, limit)
        proposals: dict[str, list[str]] = {}
        if span := encoded.spans[index]:
            # Estimated from a placeholder (the mask or pad token) put where the word would go.
            gap = span[-1] + 1
            placeholder = self.tokenizer.mask_token_id or self.tokenizer.pad_token_id or 0
            gradient = self._gradient(encoded.ids[:gap] + [placeholder] + encoded.ids[gap:],
                                      encoded.types[:gap] + [encoded.types[span[-1]]] + encoded.types[gap:])
            # Most words do not fit between two given words: a wider first-order pool.
            proposals["gradient"] = by_gradient(self.vocabulary, self._embeddings(), gradient[[gap]], 4 * pool,
                                                [""])[0]
        if self.masked_lm is not None:
            proposals["masked_lm"] = self.masked_lm.fill(snippet, word, insert=True, count=pool)
        kept = self._similar(snippet, self._variants(snippet, word, proposals, insert=True))
        return self._ranked(kept[: self.dropdown_budget], "insertion", limit)

    def edit_map(self, snippet: SnippetText, *, per_word: int | None = None) -> list[Suggestion]:
        """The best single-word substitution for every word, under the similarity constraint.

        `per_word` candidates from each of the gradient and the embedding neighbours for every
        word at once (one matrix product each; by default as many as the window budget allows,
        2 to 24), their similarity in one batch, then the first few that pass at each word (as
        many as the variant budget allows) scored exactly in one batched pass. The masked LM is
        not asked here (one forward pass per word).
        """
        encoded = self._encode(snippet)
        words = [w for w in encoded.words if encoded.spans[w.index]]
        if not words:
            return []
        per_word = per_word or max(2, min(24, self.window_budget // (2 * len(words))))
        gradient = self._gradient(encoded.ids, encoded.types)
        rows = gradient[[encoded.spans[w.index][0] for w in words]]
        originals = [w.text for w in words]
        by_words = by_gradient(self.vocabulary, self._embeddings(), rows, per_word, originals)
        near = self.neighbours.of([[encoded.ids[p] for p in encoded.spans[w.index]] for w in words], rows,
                                  per_word, originals)
        variants = [v for w, g, n in zip(words, by_words, near)
                    for v in self._variants(snippet, w, {"gradient": g, "neighbours": n}, insert=False)]
        scored_per_word = max(1, min(per_word, self.variant_budget // len(words)))
        kept, taken = [], {}
        for variant, similarity in self._similar(snippet, variants):
            index = variant.word.index
            if taken.get(index, 0) < scored_per_word:
                taken[index] = taken.get(index, 0) + 1
                kept.append((variant, similarity))
        best: dict[int, Suggestion] = {}
        for suggestion in self._ranked(kept, "substitution", len(kept)):  # lowest score first
            best.setdefault(suggestion.index, suggestion)
        return [best[w.index] for w in words if w.index in best]
