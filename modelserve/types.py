"""The plain values of inference (no PyTorch here, so that importing them is cheap)."""

from dataclasses import dataclass

from config.errors import Refused

#: the largest seed anything takes (training, experiments' draws): torch.manual_seed takes at
#: most 2**64 - 1 and training adds one per epoch; JSON and a PostgreSQL bigint hold it
MAX_SEED = 2**62


@dataclass(frozen=True)
class SnippetText:
    """A prompt and its completion as text (what a classifier scores; the stored snippet is annotation's)."""

    prompt: str
    completion: str


@dataclass(frozen=True)
class WordSaliency:
    index: int  # the word's number in the snippet, the prompt's words first
    word: str  # as written
    part: str  # "prompt" or "completion"
    start: int  # character offsets in its part
    end: int
    saliency: float  # gradient norm over the word's tokens, scaled so that the largest in the snippet is 1
    insertable_after: bool  # a word may be inserted right after it


@dataclass(frozen=True)
class Suggestion:
    index: int  # the word replaced, or the word the new one is inserted after
    kind: str  # "substitution" or "insertion"
    original: str  # that word, as written
    word: str  # the offered word, as it is written into the text
    sources: tuple[str, ...]  # what proposed it: "gradient", "neighbours", "masked_lm"
    score: float  # the exact score of the edited snippet
    similarity: float  # cosine of the edited sentence's embedding to the sentence before the edit
    snippet: SnippetText  # the edited snippet, as text


class InvalidInput(Refused, ValueError):
    """Refused input: empty text, too long, a word that cannot be edited."""
