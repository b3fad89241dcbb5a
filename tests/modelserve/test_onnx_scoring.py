"""CPU scoring through ONNX Runtime equals PyTorch's, at every length and padding."""

import pytest
import torch

from modelserve.inference import Classifier, SnippetText
from tests.tiny_models import tiny

SNIPPETS = [
    SnippetText("the knight walked to the castle .", "he fell and broke his arm ."),
    SnippetText("a boy slept", "they laughed"),
    SnippetText("the dog ran home . " * 4, "she smiled . " * 3),
]


def both(tokenizer, kind="bert"):
    model = tiny(kind)
    with torch.no_grad():  # a random tiny model scores every text alike: spread its logits out
        model.classifier.weight.mul_(300.0)
    onnx = Classifier(model, tokenizer, version="onnx", device=torch.device("cpu"), cache_size=0)
    eager = Classifier(model, tokenizer, version="torch", device=torch.device("cpu"), cache_size=0, cpu_runtime="torch")
    return onnx, eager


def test_scores_through_onnx_runtime_equal_pytorch_s_in_padded_batches_and_alone(tokenizer):
    onnx, eager = both(tokenizer)
    encoded = [onnx._encode(snippet) for snippet in SNIPPETS]
    ids, types = [e.ids for e in encoded], [e.types for e in encoded]

    logits = onnx._forward(ids, types)  # three lengths in one padded batch

    assert onnx._onnx is not None and eager._onnx is None
    expected = eager._forward(ids, types)
    assert torch.allclose(logits, expected, rtol=1e-4, atol=1e-4)
    assert (expected.max() - expected.min()) > 50 * 1e-4  # the three differ by far more than the tolerance
    for i in range(len(SNIPPETS)):
        assert torch.allclose(onnx._forward(ids[i : i + 1], types[i : i + 1]), expected[i : i + 1], rtol=1e-4, atol=1e-4)
    assert onnx.score(SNIPPETS) == pytest.approx(eager.score(SNIPPETS), abs=1e-6)


def test_the_export_is_of_the_weights_at_its_first_use(tokenizer):
    onnx, eager = both(tokenizer)
    before = onnx.score(SNIPPETS[:1])[0]
    with torch.no_grad():
        for parameter in onnx.model.classifier.parameters():
            parameter.add_(0.5)

    assert eager.score(SNIPPETS[:1])[0] != pytest.approx(before, abs=1e-3)
    assert onnx.score(SNIPPETS[:1])[0] == pytest.approx(before, abs=1e-6)


def test_other_architectures_and_the_torch_setting_score_in_pytorch(tokenizer):
    onnx, eager = both(tokenizer, "deberta-v2")

    assert onnx.score(SNIPPETS) == pytest.approx(eager.score(SNIPPETS), abs=1e-6)
    assert onnx._onnx is None
    with pytest.raises(ValueError):
        Classifier(tiny("bert"), tokenizer, version="x", device=torch.device("cpu"), cpu_runtime="tensorrt")


def test_sentence_embeddings_through_onnx_runtime_equal_pytorch_s_and_leave_the_model_in_eval_mode(tokenizer):
    from modelserve.similarity import SentenceEncoder
    from tests.tiny_models import tiny_encoder

    model = tiny_encoder(tokenizer).model
    onnx = SentenceEncoder(model, tokenizer, cache_size=0)
    eager = SentenceEncoder(model, tokenizer, cache_size=0, cpu_runtime="torch")
    texts = ["he fell and", "the knight walked to the castle and broke his arm", "a"]
    together = onnx.embed(texts)  # three lengths in one padded batch
    assert onnx._onnx is not None and eager._onnx is None
    assert not model.training  # the export put back eval mode: no dropout in PyTorch afterwards
    expected = eager.embed(texts)
    assert torch.allclose(together, expected, atol=1e-5)
    assert torch.allclose(onnx.embed(texts[1:2]), expected[1:2], atol=1e-5)
    assert (expected[0] @ expected[1]) < 1 - 1e-3  # the texts differ by far more than the tolerance
