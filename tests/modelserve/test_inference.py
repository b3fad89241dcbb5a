"""The inference interface against direct, brute-force computations on tiny models."""

import pytest
import torch

from modelserve.inference import InvalidInput, Snippet

SNIPPET = Snippet("the knight walked to the castle .", "he fell and broke his arm .")


def direct_score(classifier, ids, types):
    """One sequence through the model, no batching, no cache."""
    with torch.no_grad():
        logit = classifier.model(
            input_ids=torch.tensor([ids]), token_type_ids=torch.tensor([types]),
            attention_mask=torch.ones(1, len(ids), dtype=torch.long),
        ).logits[0, 0]
    return float(torch.sigmoid(logit))


def encoded(classifier, snippet=SNIPPET):
    e = classifier._encode(snippet)
    return e.ids, e.types


def test_batch_scores_equal_one_at_a_time_scores(classifier):
    snippets = [SNIPPET, Snippet("the dog ran home .", "she smiled ."), Snippet("a boy slept", "they laughed quietly")]
    batched = classifier.score(snippets)
    for snippet, score in zip(snippets, batched):
        assert score == pytest.approx(direct_score(classifier, *encoded(classifier, snippet)), abs=1e-5)
    assert classifier.score(snippets) == batched  # served from the cache the second time


def test_saliency_equals_a_direct_autograd_reference(classifier):
    ids, types = encoded(classifier)
    captured = {}
    embedding = classifier.model.get_input_embeddings()

    def keep(module, inputs, output):
        output.retain_grad()
        captured["output"] = output

    for parameter in classifier.model.parameters():
        parameter.requires_grad_(True)
    handle = embedding.register_forward_hook(keep)
    try:
        logit = classifier.model(input_ids=torch.tensor([ids]), token_type_ids=torch.tensor([types])).logits[0, 0]
        logit.backward()
    finally:
        handle.remove()
        for parameter in classifier.model.parameters():
            parameter.requires_grad_(False)
    norms = captured["output"].grad[0].norm(dim=-1)

    result = classifier.saliency(SNIPPET)
    special = {classifier.tokenizer.cls_token_id, classifier.tokenizer.sep_token_id}
    assert [r.index for r in result] == [i for i, t in enumerate(ids) if t not in special]
    top = max(float(norms[r.index]) for r in result)
    for r in result:
        assert r.saliency == pytest.approx(float(norms[r.index]) / top, rel=1e-4)
    assert {r.part for r in result} == {"prompt", "completion"}
    assert max(r.saliency for r in result) == pytest.approx(1.0)


def allowed_tokens(classifier, word_start):
    mask = classifier._allowed_for(word_start)
    return [i for i in range(mask.shape[0]) if mask[i]]


def test_substitutions_are_sorted_by_exact_score_and_match_brute_force(classifier):
    ids, types = encoded(classifier)
    index = ids.index(classifier.tokenizer.convert_tokens_to_ids("broke"))
    vocab = len(classifier.tokenizer)
    suggestions = classifier.substitutions(SNIPPET, index, limit=vocab, pool=vocab)

    brute = {}
    for token_id in allowed_tokens(classifier, True):
        if token_id == ids[index]:
            continue
        variant = list(ids)
        variant[index] = token_id
        brute[token_id] = direct_score(classifier, variant, types)
    assert {s.token_id for s in suggestions} == set(brute)
    assert [s.score for s in suggestions] == sorted(s.score for s in suggestions)
    for s in suggestions:
        assert s.score == pytest.approx(brute[s.token_id], abs=1e-5)
        assert not s.token.startswith("##") and s.token not in ("[CLS]", "[SEP]", "[PAD]", "[MASK]", "[UNK]")

    few = classifier.substitutions(SNIPPET, index, limit=5, pool=12)
    assert [s.score for s in few] == sorted(s.score for s in few) and len(few) == 5


def test_a_fragment_is_only_replaced_by_fragments(classifier):
    snippet = Snippet("the knight walked", "he cut his arms")
    ids, _ = encoded(classifier, snippet)
    index = ids.index(classifier.tokenizer.convert_tokens_to_ids("##s"))
    suggestions = classifier.substitutions(snippet, index, limit=10)
    assert suggestions and all(s.token.startswith("##") for s in suggestions)


def test_insertions_match_brute_force(classifier):
    ids, types = encoded(classifier)
    gap = ids.index(classifier.tokenizer.convert_tokens_to_ids("fell"))
    vocab = len(classifier.tokenizer)
    suggestions = classifier.insertions(SNIPPET, gap, limit=vocab, pool=vocab)
    brute = {
        token_id: direct_score(classifier, ids[:gap] + [token_id] + ids[gap:], types[:gap] + [types[gap]] + types[gap:])
        for token_id in allowed_tokens(classifier, True)
    }
    assert {s.token_id for s in suggestions} == set(brute)
    assert [s.score for s in suggestions] == sorted(s.score for s in suggestions)
    assert suggestions[0].score == pytest.approx(min(brute.values()), abs=1e-5)
    assert suggestions[0].token in suggestions[0].snippet.completion.split()


def test_edit_map_agrees_with_brute_force(classifier):
    snippet = Snippet("the dog ran", "she fell badly")
    ids, types = encoded(classifier, snippet)
    vocab = len(classifier.tokenizer)
    edits = classifier.edit_map(snippet, per_position=vocab)
    special = set(classifier.tokenizer.all_special_ids)
    positions = [i for i, t in enumerate(ids) if t not in special]
    assert [e.index for e in edits] == positions
    for edit in edits:
        best = min(
            direct_score(classifier, ids[: edit.index] + [v] + ids[edit.index + 1 :], types)
            for v in allowed_tokens(classifier, classifier._is_word_start(ids[edit.index]))
            if v != ids[edit.index]
        )
        assert edit.score == pytest.approx(best, abs=1e-5)


def test_edit_map_with_few_candidates_still_scores_exactly(classifier):
    edits = classifier.edit_map(SNIPPET, per_position=3)
    for edit in edits:
        ids, types = encoded(classifier)
        ids[edit.index] = edit.token_id
        assert edit.score == pytest.approx(direct_score(classifier, ids, types), abs=1e-5)


def test_suggested_text_scores_what_the_suggestion_says(classifier):
    ids, _ = encoded(classifier)
    index = ids.index(classifier.tokenizer.convert_tokens_to_ids("arm"))
    for suggestion in classifier.substitutions(SNIPPET, index, limit=5):
        assert classifier.score([suggestion.snippet])[0] == pytest.approx(suggestion.score, abs=1e-5)


def test_masked_lm_candidates(classifier_with_mlm):
    ids, types = encoded(classifier_with_mlm)
    index = ids.index(classifier_with_mlm.tokenizer.convert_tokens_to_ids("fell"))
    suggestions = classifier_with_mlm.substitutions(SNIPPET, index, limit=6, pool=10)
    assert len(suggestions) == 6
    assert [s.score for s in suggestions] == sorted(s.score for s in suggestions)
    for s in suggestions:
        variant = list(ids)
        variant[index] = s.token_id
        assert s.score == pytest.approx(direct_score(classifier_with_mlm, variant, types), abs=1e-5)


def test_bad_inputs_are_refused(classifier):
    with pytest.raises(InvalidInput, match="empty"):
        classifier.score([Snippet("  ", "")])
    with pytest.raises(InvalidInput, match="limit"):
        classifier.score([Snippet("the dog " * 40, "ran")])
    with pytest.raises(InvalidInput, match="cannot be edited"):
        classifier.substitutions(SNIPPET, 0)  # [CLS]
    with pytest.raises(InvalidInput, match="cannot be edited"):
        classifier.substitutions(SNIPPET, 999)
    split = Snippet("the knight", "he cut his arms")
    ids, _ = encoded(classifier, split)
    with pytest.raises(InvalidInput, match="split a word"):
        classifier.insertions(split, ids.index(classifier.tokenizer.convert_tokens_to_ids("##s")))
