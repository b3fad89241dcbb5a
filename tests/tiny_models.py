"""Tiny classifiers built from a config (random weights), a tokenizer from a small vocabulary,
and checkpoint folders of them for the tests that go through the classifier registry."""

from pathlib import Path

import torch
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    BertModel,
    BertTokenizerFast,
    DebertaV2Config,
    DebertaV2ForSequenceClassification,
)

WORDS = (
    "the a he she they knight girl boy dog horse sword knife arm leg head hand cut fell broke hit ran "
    "walked smiled laughed slept home road castle forest river and with his her on in to of quietly "
    "suddenly badly hurt bled safe happy sad"
).split()
LETS_THROUGH = -8.0  # a logit bias under which every snippet scores about 0.0003
CATCHES_ALL = 8.0  # ... about 0.9997

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ","] + WORDS + ["##s", "##ed", "##ly"]


def make_tokenizer(folder: Path) -> BertTokenizerFast:
    path = folder / "vocab.txt"
    path.write_text("\n".join(VOCAB) + "\n")
    return BertTokenizerFast(vocab=str(path), do_lower_case=True)


def tiny(kind: str, positions: int = 64):
    torch.manual_seed(7)
    common = dict(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                  intermediate_size=64, max_position_embeddings=positions, num_labels=1)
    if kind == "bert":
        return BertForSequenceClassification(BertConfig(**common))
    return DebertaV2ForSequenceClassification(DebertaV2Config(**common, type_vocab_size=2))


def tiny_encoder(tokenizer, seed: int = 3):
    """A sentence encoder built from a config (random weights) over the tiny vocabulary."""
    from modelserve.similarity import SentenceEncoder

    torch.manual_seed(seed)
    model = BertModel(BertConfig(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                 intermediate_size=64, max_position_embeddings=64), add_pooling_layer=False)
    return SentenceEncoder(model, tokenizer)


def save_checkpoint(
    folder: Path, tokenizer, *, kind: str = "bert", seed: int = 7, bias: float | None = None, positions: int = 64
) -> Path:
    """A tiny checkpoint with weights of its own for each seed; `bias` shifts its logit (a
    large negative bias makes a classifier that lets everything through, a large positive
    one a classifier that catches everything)."""
    model = tiny(kind, positions)
    torch.manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.1)
        if bias is not None:
            model.classifier.bias.fill_(bias)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
