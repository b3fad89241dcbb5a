"""Tiny classifiers built from a config (random weights), loaded in process."""

import pytest
import torch
from transformers import BertConfig, BertForMaskedLM

from modelserve.inference import Classifier
from tests.tiny_models import VOCAB, tiny

__all__ = ["VOCAB", "tiny"]  # the `tokenizer` fixture is in tests/conftest.py

@pytest.fixture(params=["bert", "deberta-v2"])
def classifier(request, tokenizer):
    return Classifier(tiny(request.param), tokenizer, version=f"tiny-{request.param}", device=torch.device("cpu"))


@pytest.fixture
def classifier_with_mlm(tokenizer):
    torch.manual_seed(11)
    mlm = BertForMaskedLM(BertConfig(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=2,
                                     num_attention_heads=2, intermediate_size=64, max_position_embeddings=64))
    return Classifier(tiny("bert"), tokenizer, version="tiny-mlm", mlm=mlm, device=torch.device("cpu"))
