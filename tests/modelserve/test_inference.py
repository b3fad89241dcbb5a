"""The inference interface against direct, brute-force computations on tiny models."""

import re
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from transformers import BertConfig, BertForMaskedLM, BertTokenizerFast

from modelserve.candidates import MaskedLM
from modelserve.inference import Classifier, InvalidInput, SnippetText
from modelserve.words import words_of
from tests.tiny_models import VOCAB, WORDS, tiny

SNIPPET = SnippetText("the knight walked to the castle .", "he fell and broke his arm .")


def direct_score(classifier, snippet: SnippetText) -> float:
    """One snippet through the model from its text: no batching, no cache, no runtime choice."""
    encoded = classifier.tokenizer(snippet.prompt, snippet.completion, return_tensors="pt")
    with torch.no_grad():
        logit = classifier.model(**encoded).logits[0, 0]
    return float(torch.sigmoid(logit.float()))


def embed(encoder, text: str) -> torch.Tensor:
    encoded = encoder.tokenizer(text, return_tensors="pt")
    with torch.no_grad():
        hidden = encoder.model(**encoded).last_hidden_state[0]
    return torch.nn.functional.normalize(hidden.mean(dim=0), dim=0)


def window_similarity(encoder, before: str, after: str, index: int, inserted: bool = False) -> float:
    """By hand: the edited word and one word each side (the tiny texts' words are space-separated)."""
    old, new = re.findall(r"\w+", before), re.findall(r"\w+", after)
    if inserted:
        old_window, new_window = old[max(0, index): index + 2], new[max(0, index): index + 3]
    else:
        old_window, new_window = old[max(0, index - 1): index + 2], new[max(0, index - 1): index + 2]
    return float(embed(encoder, " ".join(old_window)) @ embed(encoder, " ".join(new_window)))


def word_index(snippet: SnippetText, text: str, part: str = "completion") -> int:
    return next(w.index for w in words_of(snippet) if w.text == text and w.part == part)


def test_batch_scores_equal_one_at_a_time_scores(classifier):
    snippets = [SNIPPET, SnippetText("the dog ran home .", "she smiled ."), SnippetText("a boy slept", "they laughed quietly")]
    batched = classifier.score(snippets)
    for snippet, score in zip(snippets, batched):
        assert score == pytest.approx(direct_score(classifier, snippet), abs=1e-5)
    assert classifier.score(snippets) == batched  # served from the cache the second time


def test_saliency_is_the_gradient_norm_over_each_words_tokens(classifier):
    snippet = SnippetText("the knights walked .", "he fell badly .")  # knights = knight ##s: two tokens
    encoded = classifier.tokenizer(snippet.prompt, snippet.completion, return_tensors="pt")
    captured = {}
    embedding = classifier.model.get_input_embeddings()

    def keep(module, inputs, output):
        output.retain_grad()
        captured["output"] = output

    for parameter in classifier.model.parameters():
        parameter.requires_grad_(True)
    handle = embedding.register_forward_hook(keep)
    try:
        classifier.model(**encoded).logits[0, 0].backward()
    finally:
        handle.remove()
        for parameter in classifier.model.parameters():
            parameter.requires_grad_(False)
    gradient = captured["output"].grad[0]
    tokens = classifier.tokenizer.convert_ids_to_tokens(encoded["input_ids"][0])
    by_word = {"the": [1], "knights": [2, 3], "walked": [4], "he": [7], "fell": [8], "badly": [9]}
    assert [tokens[i] for i in by_word["knights"]] == ["knight", "##s"]
    norms = {word: float(gradient[positions].norm()) for word, positions in by_word.items()}

    result = classifier.saliency(snippet)
    assert [(w.word, w.part) for w in result] == [("the", "prompt"), ("knights", "prompt"), ("walked", "prompt"),
                                                 ("he", "completion"), ("fell", "completion"), ("badly", "completion")]
    top = max(norms.values())
    for w in result:
        assert w.saliency == pytest.approx(norms[w.word] / top, rel=1e-4)
    assert max(w.saliency for w in result) == pytest.approx(1.0)


def test_substitutions_are_every_similar_whole_word_scored_exactly(classifier):
    """Brute force over the whole vocabulary: what is offered is exactly the whole words whose
    window stays at the similarity setting or above, each with its exact score, lowest first."""
    index = word_index(SNIPPET, "broke")
    similarity = {
        word: window_similarity(classifier.encoder, SNIPPET.completion,
                                SNIPPET.completion.replace("broke", word), index - 6)
        for word in WORDS if word != "broke"
    }
    classifier.min_similarity = sorted(similarity.values())[len(similarity) // 2]  # half of them pass
    classifier.dropdown_budget = 10_000
    vocab = len(VOCAB)
    offered = classifier.substitutions(SNIPPET, index, limit=vocab, pool=vocab)

    assert {s.word for s in offered} == {w for w, sim in similarity.items() if sim >= classifier.min_similarity}
    assert [s.score for s in offered] == sorted(s.score for s in offered)
    for s in offered:
        assert s.kind == "substitution" and s.original == "broke" and s.index == index
        assert s.snippet == SnippetText(SNIPPET.prompt, SNIPPET.completion.replace("broke", s.word))
        assert s.score == pytest.approx(direct_score(classifier, s.snippet), abs=1e-5)
        assert s.similarity == pytest.approx(similarity[s.word], abs=1e-5)
        assert set(s.sources) <= {"gradient", "neighbours"}

    few = classifier.substitutions(SNIPPET, index, limit=5, pool=12)
    assert len(few) <= 5 and [s.score for s in few] == sorted(s.score for s in few)


def test_insertions_follow_a_word_and_match_brute_force(classifier):
    index = word_index(SNIPPET, "arm")
    classifier.min_similarity = -1.0  # every word: the brute force below compares scores alone
    classifier.dropdown_budget = 10_000
    offered = classifier.insertions(SNIPPET, index, limit=len(VOCAB), pool=len(VOCAB))
    assert {s.word for s in offered} == set(WORDS)
    for s in offered:
        assert s.snippet.completion == f"he fell and broke his arm {s.word} ."  # before the full stop, never after
        assert s.score == pytest.approx(direct_score(classifier, s.snippet), abs=1e-5)
        assert s.similarity == pytest.approx(
            window_similarity(classifier.encoder, SNIPPET.completion, s.snippet.completion, index - 6, True), abs=1e-5)
    assert [s.score for s in offered] == sorted(s.score for s in offered)


def test_the_edit_map_gives_each_words_best_similar_replacement(classifier):
    snippet = SnippetText("the dog ran", "she fell badly")
    classifier.min_similarity = 0.97
    classifier.variant_budget = 10_000
    edits = classifier.edit_map(snippet, per_word=len(VOCAB))
    words = words_of(snippet)
    for edit in edits:
        word = words[edit.index]
        text = snippet.prompt if word.part == "prompt" else snippet.completion
        local = edit.index if word.part == "prompt" else edit.index - 3
        candidates = []
        for v in WORDS:
            if v == word.text:
                continue
            edited_text = text[: word.start] + v + text[word.end :]
            if window_similarity(classifier.encoder, text, edited_text, local) >= classifier.min_similarity:
                edited = SnippetText(edited_text, snippet.completion) if word.part == "prompt" else SnippetText(
                    snippet.prompt, edited_text)
                candidates.append(direct_score(classifier, edited))
        assert candidates, f"no similar word for {word.text!r}, yet the map offers one"
        assert edit.score == pytest.approx(min(candidates), abs=1e-5)
        assert edit.similarity >= classifier.min_similarity
    assert {e.index for e in edits} <= {w.index for w in words}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(["Sir", "Aldric", "didn't", "café", "ARM", "🙂", "«quoted»", "ǂ", "the", "knight",
                                 "fell", "—", "O'Brien's", "  "]), min_size=2, max_size=10), st.data())
def test_an_applied_suggestion_changes_exactly_one_word_span(tokenizer, encoder, pieces, data):
    classifier = Classifier(tiny("bert"), tokenizer, version="prop", encoder=encoder, device=torch.device("cpu"),
                            min_similarity=-1.0, cpu_runtime="torch")
    snippet = SnippetText(" ".join(pieces), "He didn't see the knife, and it cut his ARM.")
    words = words_of(snippet)
    word = words[data.draw(st.integers(0, len(words) - 1))]
    tool = data.draw(st.sampled_from(["substitutions", "insertions"] if word.insertable_after else ["substitutions"]))
    for s in getattr(classifier, tool)(snippet, word.index, limit=4, pool=4):
        text = snippet.prompt if word.part == "prompt" else snippet.completion
        new = s.snippet.prompt if word.part == "prompt" else s.snippet.completion
        other = (snippet.completion, s.snippet.completion) if word.part == "prompt" else (snippet.prompt,
                                                                                            s.snippet.prompt)
        assert other[0] == other[1]
        if tool == "substitutions":
            assert new == text[: word.start] + s.word + text[word.end :]
            assert s.word.isalpha() and s.word.lower() in classifier.vocabulary.words  # a whole word, no piece
            if word.text[0].isupper():
                assert s.word[0].isupper()
        else:
            assert new == text[: word.end] + " " + s.word + text[word.end :]
        assert not s.word.startswith("##")


def test_a_masked_lm_proposes_words_the_classifier_does_not_know(classifier, tmp_path):
    """A masked LM with a tokenizer of its own: its blank is filled in the text, so it offers
    words outside the classifier's vocabulary, which neither the gradient nor the embedding
    neighbours can produce."""
    (tmp_path / "vocab.txt").write_text("\n".join(VOCAB + ["zebra", "meadow"]) + "\n")
    mlm_tokenizer = BertTokenizerFast(vocab=str(tmp_path / "vocab.txt"), do_lower_case=True)
    torch.manual_seed(11)
    mlm = BertForMaskedLM(BertConfig(vocab_size=len(VOCAB) + 2, hidden_size=32, num_hidden_layers=1,
                                     num_attention_heads=2, intermediate_size=64, max_position_embeddings=64))
    with torch.no_grad():
        mlm.get_output_embeddings().bias[len(VOCAB)] = 50.0  # "zebra" fills every blank
    classifier.masked_lm = MaskedLM(mlm, mlm_tokenizer)
    classifier.min_similarity = -1.0
    assert "zebra" not in classifier.vocabulary.words

    index = word_index(SNIPPET, "arm")
    offered = classifier.substitutions(SNIPPET, index, limit=len(VOCAB), pool=6)
    zebra = next(s for s in offered if s.word == "zebra")
    assert zebra.sources == ("masked_lm",)
    assert zebra.snippet.completion == "he fell and broke his zebra ."
    assert zebra.score == pytest.approx(direct_score(classifier, zebra.snippet), abs=1e-5)
    inserted = classifier.insertions(SNIPPET, index, limit=len(VOCAB), pool=6)
    assert "he fell and broke his arm zebra ." in {s.snippet.completion for s in inserted}


def test_the_head_runs_in_float32_under_autocast(tokenizer, encoder):
    """bf16 autocast for the encoder, float32 for the head: the score equals the float32 head
    applied to the encoder's own (bf16-computed) output; a bf16 head would be ~1e-3 off."""
    model = tiny("bert")
    classifier = Classifier(model, tokenizer, version="amp", encoder=encoder, device=torch.device("cpu"),
                            autocast=True)
    captured = {}
    model.classifier.register_forward_hook(lambda module, inputs, output: captured.update(pooled=inputs[0]))
    [score] = classifier.score([SNIPPET])
    pooled = captured["pooled"]
    assert pooled.dtype == torch.float32  # the head got float32 input
    with torch.no_grad():
        reference = torch.sigmoid(pooled.double() @ model.classifier.weight.double().T + model.classifier.bias.double())
        in_bf16 = torch.sigmoid((pooled.bfloat16() @ model.classifier.weight.bfloat16().T
                                 + model.classifier.bias.bfloat16()).float())
    assert score == pytest.approx(float(reference), abs=1e-6)
    assert abs(float(in_bf16) - float(reference)) > 1e-6  # what the test would catch


def test_bad_inputs_are_refused(classifier, tokenizer, tmp_path):
    with pytest.raises(InvalidInput, match="empty"):
        classifier.score([SnippetText("  ", "")])
    with pytest.raises(InvalidInput, match="limit"):
        classifier.score([SnippetText("the dog " * 40, "ran")])
    with pytest.raises(InvalidInput, match="there is no word 99"):
        classifier.substitutions(SNIPPET, 99)
    hyphenated = SnippetText("a well-known road", "he fell .")
    with pytest.raises(InvalidInput, match="inserted right after 'well'"):
        classifier.insertions(hyphenated, 1)
    with pytest.raises(InvalidInput, match="fast tokenizer"):
        Classifier(tiny("bert"), _SlowTokenizer(), version="slow", device=torch.device("cpu"))


class _SlowTokenizer:
    """A slow (Python) tokenizer has no offsets to map words to their tokens."""

    is_fast = False


def test_scores_equal_across_processes(tokenizer, tmp_path):
    """Two processes that load the same checkpoint score the same texts identically."""
    import json
    import subprocess
    import sys

    from tests.tiny_models import save_checkpoint

    folder = save_checkpoint(tmp_path / "ckpt", tokenizer)
    texts = [SNIPPET, SnippetText("a boy slept", "they laughed quietly")]
    here = Classifier.from_folder(folder, version="here", device=torch.device("cpu")).score(texts)
    script = (
        "import json, sys, torch\n"
        "from modelserve.inference import Classifier, SnippetText\n"
        f"c = Classifier.from_folder({str(folder)!r}, version='there', device=torch.device('cpu'))\n"
        f"print(json.dumps(c.score([SnippetText(*t) for t in {[(t.prompt, t.completion) for t in texts]!r}])))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                            cwd=Path(__file__).resolve().parents[2])
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == here
