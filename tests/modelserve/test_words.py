"""Words as the author wrote them, and one-word edits spliced into that text (no model)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelserve.types import InvalidInput, SnippetText
from modelserve.words import (
    TERMINAL,
    changed_window,
    insert_after,
    match_case,
    sentence_span,
    substitute,
    words_of,
)

# Pieces of text a contractor writes: capitals, contractions, quotes, accents, emoji, characters
# outside any vocabulary, unusual spacing and line breaks.
PIECES = ["Sir", "Aldric", "didn't", "O'Brien", "café", "naïve", "Ünter", "ARM", "the", "knight", "2024",
          "🙂", "—", "«", "»", "“", "”", "\"", "'", "(", ")", ",", ";", ":", "…", "-", "ǂ", "𝔘", "\t", "  ", "\r\n"]
TEXT = st.lists(st.sampled_from(PIECES), min_size=1, max_size=14).map(
    lambda pieces: "".join(p if p.isspace() else p + " " for p in pieces))
SENTENCE = st.tuples(TEXT, st.sampled_from([".", "!", "?", "…", ".\"", ""])).map(lambda t: t[0].rstrip() + t[1])
SNIPPETS = st.builds(SnippetText, TEXT, SENTENCE).filter(lambda s: words_of(s))
REPLACEMENT = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=9)


def changed_span(before: str, after: str) -> tuple[int, int, int]:
    """The single stretch where two strings differ: common prefix and suffix lengths."""
    prefix = 0
    while prefix < min(len(before), len(after)) and before[prefix] == after[prefix]:
        prefix += 1
    suffix = 0
    while suffix < min(len(before), len(after)) - prefix and before[-1 - suffix] == after[-1 - suffix]:
        suffix += 1
    return prefix, suffix, len(after) - prefix - suffix


@given(SNIPPETS, st.data(), REPLACEMENT)
def test_a_substitution_changes_one_word_span_and_nothing_else(snippet, data, replacement):
    words = words_of(snippet)
    word = words[data.draw(st.integers(0, len(words) - 1))]
    edited = substitute(snippet, word, match_case(replacement, word))
    part = "prompt" if word.part == "prompt" else "completion"
    untouched = "completion" if part == "prompt" else "prompt"
    assert getattr(edited, untouched) == getattr(snippet, untouched)
    before, after = getattr(snippet, part), getattr(edited, part)
    assert after[: word.start] == before[: word.start]  # byte for byte, before and after the word
    assert after[word.start + len(replacement):] == before[word.end:]
    assert after[word.start : word.start + len(replacement)].lower() == replacement
    new_words = words_of(edited)
    assert [w.text for w in new_words if w.index != word.index] == [w.text for w in words if w.index != word.index]


@given(SNIPPETS, st.data(), REPLACEMENT)
def test_an_insertion_adds_one_word_after_a_word_and_never_after_the_final_punctuation(snippet, data, inserted):
    words = [w for w in words_of(snippet) if w.insertable_after]
    if not words:
        return
    word = data.draw(st.sampled_from(words))
    edited = insert_after(snippet, word, inserted)
    text, new = getattr(snippet, word.part), getattr(edited, word.part)
    assert new == text[: word.end] + " " + inserted + text[word.end :]
    assert len(words_of(edited)) == len(words_of(snippet)) + 1
    if word.part == "completion":
        final = text.rstrip()
        tail = len(final) - len(final.rstrip(TERMINAL + "\"'’”)"))
        if tail:  # the completion ends in punctuation: it still ends in the same
            assert new.rstrip().endswith(final[-tail:])
            assert word.end <= len(final) - tail


def test_words_keep_contractions_names_and_accents_whole():
    snippet = SnippetText("Sir Aldric didn't stop at the café.", "O'Brien's arm—broken—hung 🙂 loose.")
    assert [w.text for w in words_of(snippet)] == ["Sir", "Aldric", "didn't", "stop", "at", "the", "café",
                                                  "O'Brien's", "arm", "broken", "hung", "loose"]
    words = words_of(snippet)
    assert [w.sentence_start for w in words][:2] == [True, False] and words[7].sentence_start
    assert words[8].insertable_after  # "arm" is followed by a dash: a word may go there
    hyphenated = words_of(SnippetText("a well-known road", "x"))
    assert [w.insertable_after for w in hyphenated][:3] == [True, False, True]
    with pytest.raises(InvalidInput, match="inserted right after 'well'"):
        insert_after(SnippetText("a well-known road", "x"), hyphenated[1], "very")


@pytest.mark.parametrize("word,candidate,written", [
    ("arm", "leg", "leg"), ("Arm", "leg", "Leg"), ("ARM", "leg", "LEG"), ("I", "we", "We"),
])
def test_offered_words_match_the_case_of_the_word_they_replace(word, candidate, written):
    found = words_of(SnippetText("", f"his {word}"))[-1]
    assert match_case(candidate, found) == written


def test_the_first_word_of_a_part_is_a_sentence_start():
    first = words_of(SnippetText("", "he fell"))[0]
    assert first.sentence_start and match_case("she", first) == "She"


def test_a_word_at_a_sentence_start_is_capitalised():
    words = words_of(SnippetText('He fell. "then he rose', "x"))
    then = next(w for w in words if w.text == "then")
    assert then.sentence_start and match_case("later", then) == "Later"


def test_sentences_and_the_compared_window():
    text = 'He rode home. She said "stop!" and left.  Then rain'
    assert text[slice(*sentence_span(text, 3))] == "He rode home."
    assert text[slice(*sentence_span(text, 20))] == 'She said "stop!"'
    assert text[slice(*sentence_span(text, 33))] == "and left."
    assert text[slice(*sentence_span(text, len(text) - 1))] == "Then rain"
    assert changed_window("the sword cut deep into", "the blade cut deep into", 1) == ("the sword cut", "the blade cut")
    assert changed_window("a b c d e", "a b X c d e", 1) == ("b c", "b X c")
