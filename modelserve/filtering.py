"""The filtered generator: the system the classifier protects.

Rejection sampling: draw completions until one scores below the classifier's threshold; after
`max_attempts` rejected draws (100, as in the paper's evaluation) report failure. Draws come in
rounds: one generator call and one scoring call a round. Rounds grow 1, 2, 4, ... up to
`batch` draws: a prompt the filter rarely rejects costs one draw, one it often rejects gets
batched calls (a draw after the accepted one in its round is generated for nothing, so large
first rounds waste work when most draws pass). The first acceptable draw in order is the
answer, as if drawn one at a time; the draws after it in its round are dropped unseen. The request, every rejected draw and the
answer are events, appended together.
"""

import secrets
from dataclasses import dataclass, field
from uuid import UUID

from uuid_utils.compat import uuid7

from config.text import text_problem
from eventlog.store import NewEvent, append
from modelserve.errors import InvalidPrompt, ModelserveError
from modelserve.events import (
    FilteredAnswered,
    FilteredDrawRejected,
    FilteredRequested,
    GenerationParams,
    filtered_stream,
)
from modelserve.generation import Generator, Replay, draw, first_sentence
from modelserve.interface import SnippetText, generator, inference
from modelserve.models import ClassifierVersion

MAX_ATTEMPTS = 100
BATCH = 8
MAX_PROMPT = 4000


@dataclass(frozen=True)
class Draw:
    completion: str
    score: float | None  # None: empty, never scored


@dataclass(frozen=True)
class Filtered:
    request_id: UUID
    completion: str | None  # None: nothing acceptable within max_attempts
    score: float | None
    attempts: int
    rejected: list[Draw] = field(default_factory=list)
    generator: str = ""
    threshold: float = 0.0
    rounds: int = 0  # generator calls
    drawn: int = 0  # draws generated, the unseen ones after the answer included

    @property
    def accepted(self) -> bool:
        return self.completion is not None

    @property
    def is_replay(self) -> bool:
        return self.generator == Replay.name


def default_classifier() -> ClassifierVersion:
    """The promoted classifier, which must have a chosen threshold."""
    row = ClassifierVersion.objects.filter(promoted=True, status=ClassifierVersion.Status.READY).first()
    if row is None:
        raise ModelserveError("no classifier is promoted: promote one in the admin")
    return row


def filtered_completion(
    prompt: str,
    *,
    version: str | None = None,
    threshold: float | None = None,
    max_attempts: int = MAX_ATTEMPTS,
    batch: int = BATCH,
    seed: int | None = None,
    params: GenerationParams | None = None,
    user_id: int | None = None,
    using: Generator | None = None,
) -> Filtered:
    prompt = prompt.strip()
    if not prompt:
        raise InvalidPrompt("write a prompt")
    if problem := text_problem(prompt, max_length=MAX_PROMPT):
        raise InvalidPrompt(f"the prompt {problem}")
    if not 1 <= batch <= max_attempts <= 1000:
        raise ModelserveError("1 <= batch <= max_attempts <= 1000")
    row = ClassifierVersion.objects.filter(version=version).first() if version else default_classifier()
    if row is None:
        raise ModelserveError(f"no classifier {version!r}")
    threshold = threshold if threshold is not None else row.threshold
    if threshold is None:
        raise ModelserveError(f"no threshold is chosen for classifier {row.version}")
    params = params or GenerationParams(temperature=1.0, max_new_tokens=48)
    seed = secrets.randbits(62) if seed is None else seed
    writer = using or generator()
    rejected: list[Draw] = []
    answer: Draw | None = None
    rounds = drawn = 0
    while answer is None and len(rejected) < max_attempts:
        size = min(2**rounds, batch, max_attempts - len(rejected))
        rounds, drawn = rounds + 1, drawn + size
        texts = draw(writer, prompt, n=size, seed=seed + len(rejected), stop=["\n"],
                     max_new_tokens=params.max_new_tokens, temperature=params.temperature, top_p=params.top_p)
        completions = [first_sentence(text) for text in texts]
        scorable = [c for c in completions if c]
        scores = iter(inference().score(row.version, [SnippetText(prompt, c) for c in scorable]) if scorable else [])
        for completion in completions:
            candidate = Draw(completion, next(scores) if completion else None)
            if candidate.score is not None and candidate.score < threshold:
                answer = candidate
                break
            rejected.append(candidate)
    request_id = uuid7()
    stream = filtered_stream(request_id)
    events = [
        FilteredRequested(request_id=request_id, prompt=prompt, version=row.version, threshold=threshold,
                          generator=writer.name, params=params, seed=seed, max_attempts=max_attempts,
                          user_id=user_id),
        *(FilteredDrawRejected(attempt=i, completion=d.completion, score=d.score) for i, d in enumerate(rejected, 1)),
        FilteredAnswered(attempts=len(rejected) + (answer is not None), completion=answer and answer.completion,
                         score=answer and answer.score),
    ]
    append([NewEvent(stream, e) for e in events])
    return Filtered(request_id, answer and answer.completion, answer and answer.score,
                    len(rejected) + (answer is not None), rejected, writer.name, threshold, rounds, drawn)
