"""Tiny classifiers built from a config (random weights), loaded in process, each with a tiny
sentence encoder for the similarity constraint."""

import pytest
import torch

from modelserve.inference import Classifier
from tests.tiny_models import VOCAB, tiny, tiny_encoder

__all__ = ["VOCAB", "tiny"]  # the `tokenizer` fixture is in tests/conftest.py


@pytest.fixture(scope="session")
def encoder(tokenizer):
    return tiny_encoder(tokenizer)


@pytest.fixture(params=["bert", "deberta-v2"])
def classifier(request, tokenizer, encoder):
    return Classifier(tiny(request.param), tokenizer, version=f"tiny-{request.param}", encoder=encoder,
                      device=torch.device("cpu"))
