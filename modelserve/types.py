"""The plain values of inference (no PyTorch here, so that importing them is cheap)."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Snippet:
    prompt: str
    completion: str


@dataclass(frozen=True)
class TokenSaliency:
    index: int  # position in the encoded sequence
    token: str
    part: str  # "prompt" or "completion"
    saliency: float  # gradient norm, scaled so that the largest in the snippet is 1


@dataclass(frozen=True)
class Suggestion:
    index: int  # the replaced position, or the gap (insert before this position)
    token: str
    token_id: int
    score: float  # the exact score of the edited snippet
    snippet: Snippet  # the edited snippet, as text


class InvalidInput(ValueError):
    """Refused input: empty text, too long, a position that cannot be edited."""
