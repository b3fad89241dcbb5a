"""Tiny classifiers built from a config (random weights) and a tokenizer from a small vocabulary."""

import pytest
import torch
from transformers import (
    BertConfig,
    BertForMaskedLM,
    BertForSequenceClassification,
    BertTokenizerFast,
    DebertaV2Config,
    DebertaV2ForSequenceClassification,
)

from modelserve.inference import Classifier

WORDS = (
    "the a he she they knight girl boy dog horse sword knife arm leg head hand cut fell broke hit ran "
    "walked smiled laughed slept home road castle forest river and with his her on in to of quietly "
    "suddenly badly hurt bled safe happy sad"
).split()
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ","] + WORDS + ["##s", "##ed", "##ly"]


@pytest.fixture(scope="session")
def tokenizer(tmp_path_factory):
    path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    path.write_text("\n".join(VOCAB) + "\n")
    return BertTokenizerFast(vocab=str(path), do_lower_case=True)


def tiny(kind: str):
    torch.manual_seed(7)
    common = dict(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                  intermediate_size=64, max_position_embeddings=64, num_labels=1)
    if kind == "bert":
        return BertForSequenceClassification(BertConfig(**common))
    return DebertaV2ForSequenceClassification(DebertaV2Config(**common, type_vocab_size=2))


@pytest.fixture(params=["bert", "deberta-v2"])
def classifier(request, tokenizer):
    return Classifier(tiny(request.param), tokenizer, version=f"tiny-{request.param}", device=torch.device("cpu"))


@pytest.fixture
def classifier_with_mlm(tokenizer):
    torch.manual_seed(11)
    mlm = BertForMaskedLM(BertConfig(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=2,
                                     num_attention_heads=2, intermediate_size=64, max_position_embeddings=64))
    return Classifier(tiny("bert"), tokenizer, version="tiny-mlm", mlm=mlm, device=torch.device("cpu"))
