"""Words of a snippet as its author wrote them, and one-word edits spliced into that text.

Pure Python. The rewrite tool edits the author's strings, never a decoding of token ids: a
substitution replaces one whole word, an insertion adds one word right after a word, and every
other character (case, spacing, punctuation, contractions, accents, emoji) stays as it was.
Offered words are alphabetic, so an edit never adds punctuation: a one-sentence completion
stays one sentence, and nothing is ever inserted after its final full stop.
"""

import re
from dataclasses import dataclass

from modelserve.types import InvalidInput, SnippetText

PARTS = ("prompt", "completion")
# Letters and digits, with apostrophes inside ("didn't", "O'Brien"): one word each.
WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")
TERMINAL = ".!?…"
# What may stand between a word and the next (closing quotes, brackets, spaces) without
# ending or starting a sentence.
_QUOTES_AND_SPACE = " \t\r\n\"'“”‘’()[]{}«»"
# A word may be followed by an insertion only where a word can go: not inside "well-known".
_AFTER_INSERTABLE = set(_QUOTES_AND_SPACE + TERMINAL + ",;:—–")
_SENTENCE_END = re.compile(r"[.!?…]+[\"'’”)\]]*(?=\s)")


@dataclass(frozen=True)
class Word:
    index: int  # the word's number in the snippet, the prompt's words first
    part: str  # "prompt" or "completion"
    start: int  # character offsets in its part's text
    end: int
    text: str
    sentence_start: bool
    insertable_after: bool  # a word may be inserted right after this one


def part_text(snippet: SnippetText, part: str) -> str:
    return snippet.prompt if part == "prompt" else snippet.completion


def words_of(snippet: SnippetText) -> list[Word]:
    found = []
    for part in PARTS:
        text = part_text(snippet, part)
        for match in WORD.finditer(text):
            start, end = match.span()
            before = text[:start].rstrip(_QUOTES_AND_SPACE)
            found.append(Word(
                index=len(found), part=part, start=start, end=end, text=match.group(),
                sentence_start=not before or before[-1] in TERMINAL,
                insertable_after=end == len(text) or text[end] in _AFTER_INSERTABLE,
            ))
    return found


def word_at(words: list[Word], index: int) -> Word:
    if not 0 <= index < len(words):
        raise InvalidInput(f"there is no word {index}: the snippet has {len(words)} words")
    return words[index]


def _with_part(snippet: SnippetText, part: str, text: str) -> SnippetText:
    return SnippetText(text, snippet.completion) if part == "prompt" else SnippetText(snippet.prompt, text)


def substitute(snippet: SnippetText, word: Word, replacement: str) -> SnippetText:
    text = part_text(snippet, word.part)
    return _with_part(snippet, word.part, text[: word.start] + replacement + text[word.end :])


def insert_after(snippet: SnippetText, word: Word, inserted: str) -> SnippetText:
    if not word.insertable_after:
        raise InvalidInput(f"no word can be inserted right after {word.text!r}")
    text = part_text(snippet, word.part)
    return _with_part(snippet, word.part, text[: word.end] + " " + inserted + text[word.end :])


def match_case(candidate: str, word: Word) -> str:
    """An offered word written as the word it replaces is: all capitals, capitalised (or at a
    sentence start), else as the vocabulary has it."""
    if len(word.text) > 1 and word.text.isupper():
        return candidate.upper()
    if word.sentence_start or word.text[:1].isupper():
        return candidate[:1].upper() + candidate[1:]
    return candidate


def sentence_span(text: str, position: int) -> tuple[int, int]:
    """The sentence of `text` holding `position`: from after the previous sentence's end to
    its own terminal punctuation (and closing quotes), or the end of the text."""
    start = 0
    for match in _SENTENCE_END.finditer(text):
        if match.end() > position:
            return start, match.end()
        start = match.end()
        while start < len(text) and text[start].isspace():
            start += 1
    return start, len(text)


def sentences(text: str) -> list[str]:
    found, position = [], 0
    while position < len(text):
        start, end = sentence_span(text, position)
        found.append(text[start:end])
        position = max(end, position + 1)
    return [s for s in found if s.strip()]


def changed_window(before: str, after: str, around: int) -> tuple[str, str]:
    """The stretch where two texts' words differ, widened by `around` words on each side: the
    text a similarity is measured on (for one edit, the edited word and its neighbours)."""
    old, new = list(WORD.finditer(before)), list(WORD.finditer(after))
    shortest = min(len(old), len(new))
    prefix = 0
    while prefix < shortest and old[prefix].group() == new[prefix].group():
        prefix += 1
    suffix = 0
    while suffix < shortest - prefix and old[-1 - suffix].group() == new[-1 - suffix].group():
        suffix += 1

    def window(text, matches):
        first, last = max(0, prefix - around), min(len(matches), len(matches) - suffix + around) - 1
        return text[matches[first].start() : matches[last].end()] if first <= last else text

    return window(before, old), window(after, new)
