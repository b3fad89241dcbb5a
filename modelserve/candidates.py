"""Where the rewrite tool's candidate words come from.

- the classifier's gradient: the whole words whose input embedding, put where the word is,
  lowers the logit most to first order ((E_v - E_x) . g, HotFlip's estimate);
- the replaced word's nearest whole-word neighbours in the classifier's input-embedding space
  (words the model already treats alike);
- a masked language model's top fillers for the blank, when one is configured (the paper's
  source). It has its own tokenizer: the blank is made in the text, not in token ids, so any
  masked LM can serve any classifier.

Candidates are whole words only (no sub-word pieces, special tokens, digits, punctuation or what
WordPiece keeps of a contraction, such as "didn");
each is then checked for similarity and scored exactly by the classifier (`inference.py`).

Pure PyTorch / transformers: knows nothing of Django.
"""

import torch
from transformers import AutoModelForMaskedLM, AutoTokenizer

from modelserve.types import SnippetText
from modelserve.words import Word, part_text

_WORD_MARKERS = ("▁", "Ġ")  # SentencePiece's and byte-level BPE's "a word starts here"
# What WordPiece vocabularies keep of "didn't" and its kind: pieces, not words to offer.
_CONTRACTION_STEMS = {"ain", "aren", "couldn", "didn", "doesn", "hadn", "hasn", "haven", "isn", "mightn", "mustn",
                      "needn", "shan", "shouldn", "wasn", "weren", "wouldn"}


class WordVocabulary:
    """The entries of a tokenizer's vocabulary that are whole words, as plain strings."""

    def __init__(self, tokenizer, size: int) -> None:
        tokens = tokenizer.convert_ids_to_tokens(list(range(min(size, len(tokenizer)))))
        continuation = "##" if any(t and t.startswith("##") for t in tokens) else None
        # Without "##" pieces, a vocabulary that marks word starts has its unmarked entries continue words.
        marks_starts = continuation is None and any(t and t.startswith(_WORD_MARKERS) for t in tokens)
        special = set(tokenizer.all_special_ids)
        ids, words = [], []
        for token_id, token in enumerate(tokens):
            if not token or token_id in special or (continuation and token.startswith(continuation)):
                continue
            if marks_starts and not token.startswith(_WORD_MARKERS):
                continue
            word = token.lstrip("".join(_WORD_MARKERS))
            if (word.isascii() and word.isalpha() and (len(word) > 1 or word.lower() == "a")
                    and word.lower() not in _CONTRACTION_STEMS):
                ids.append(token_id)
                words.append(word)
        self.ids = torch.tensor(ids, dtype=torch.long)
        self.words = words
        self._lowered = [w.lower() for w in words]

    def __len__(self) -> int:
        return len(self.words)

    def top(self, values: torch.Tensor, count: int, *, largest: bool, exclude: str = "") -> list[str]:
        """The words of the `count` best values (one value per vocabulary entry, in order)."""
        order = torch.topk(values, min(len(self.words), count + 4), largest=largest).indices.tolist()
        excluded = exclude.lower()
        return [self.words[i] for i in order if self._lowered[i] != excluded][:count]


def by_gradient(vocabulary: WordVocabulary, embeddings: torch.Tensor, gradients: torch.Tensor, count: int,
                exclude: list[str]) -> list[list[str]]:
    """For each gradient row (taken where a word is, or would be), the words estimated to lower
    the logit most there."""
    estimates = gradients.float() @ embeddings[vocabulary.ids.to(embeddings.device)].float().T
    return [vocabulary.top(row.cpu(), count, largest=False, exclude=word) for row, word in zip(estimates, exclude)]


class Neighbours:
    """Whole words near a word in an input-embedding space: its `breadth` nearest by cosine,
    those estimated to lower the logit most first (related words that help the attack)."""

    def __init__(self, vocabulary: WordVocabulary, embeddings: torch.Tensor, breadth: int = 200) -> None:
        self.vocabulary = vocabulary
        self._rows = embeddings[vocabulary.ids].float()
        self._normalised = torch.nn.functional.normalize(self._rows, dim=-1)
        self._embeddings = embeddings
        self.breadth = breadth

    def of(self, token_ids: list[list[int]], gradients: torch.Tensor, count: int, exclude: list[str]
           ) -> list[list[str]]:
        """For each word (its token ids, the gradient where it stands), `count` neighbours."""
        if not token_ids:
            return []
        rows = torch.stack([self._embeddings[torch.tensor(ids)].float().mean(dim=0) for ids in token_ids])
        cosines = torch.nn.functional.normalize(rows, dim=-1) @ self._normalised.T
        nearest = torch.topk(cosines, min(self.breadth, len(self.vocabulary)), dim=1).indices
        found = []
        for near, gradient, word in zip(nearest, gradients.float().cpu(), exclude):
            estimates = self._rows[near] @ gradient
            order = near[torch.argsort(estimates)].tolist()
            found.append([w for w in (self.vocabulary.words[i] for i in order) if w.lower() != word.lower()][:count])
        return found


class MaskedLM:
    """Fill-in-the-blank candidates from a masked language model folder."""

    def __init__(self, model, tokenizer, *, device: torch.device | None = None) -> None:
        if tokenizer.mask_token is None:
            raise ValueError("the masked LM's tokenizer has no mask token")
        self.device = device or torch.device("cpu")
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.vocabulary = WordVocabulary(tokenizer, model.get_output_embeddings().weight.shape[0])

    @classmethod
    def from_folder(cls, folder, **options) -> "MaskedLM":
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        return cls(AutoModelForMaskedLM.from_pretrained(folder, local_files_only=True), tokenizer, **options)

    def fill(self, snippet: SnippetText, word: Word, *, insert: bool, count: int) -> list[str]:
        """The words the model puts in place of `word` (or right after it), most likely first."""
        text = part_text(snippet, word.part)
        mask = self.tokenizer.mask_token
        if insert:
            blanked = text[: word.end] + " " + mask + text[word.end :]
        else:
            blanked = text[: word.start] + mask + text[word.end :]
        pair = (blanked, snippet.completion) if word.part == "prompt" else (snippet.prompt, blanked)
        encoded = self.tokenizer(*pair, return_tensors="pt", truncation=True,
                                 max_length=getattr(self.model.config, "max_position_embeddings", 512))
        where = (encoded["input_ids"][0] == self.tokenizer.mask_token_id).nonzero()
        if not len(where):
            return []  # the blank fell beyond the model's length
        with torch.inference_mode():
            logits = self.model(**encoded.to(self.device)).logits[0, int(where[0])].float().cpu()
        return self.vocabulary.top(logits[self.vocabulary.ids], count, largest=True,
                                   exclude="" if insert else word.text)
