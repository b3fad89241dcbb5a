"""modelserve's tunables come from settings: the device, batch size, score cache, variant budget
and how many classifiers a process keeps loaded."""

import pytest
import torch

from modelserve.inference import pick_device
from modelserve.interface import InProcessInference

pytestmark = pytest.mark.django_db


def test_pick_device_names_and_refusals():
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device("") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="is not a device"):
        pick_device("gpu")
    with pytest.raises(ValueError, match="no such GPU"):
        pick_device(f"cuda:{torch.cuda.device_count()}")  # one past the last


def test_a_loaded_classifier_takes_the_settings(register, settings):
    settings.MODELSERVE_DEVICE = "cpu"
    settings.MODELSERVE_BATCH_SIZE = 3
    settings.MODELSERVE_SCORE_CACHE_SIZE = 5
    settings.MODELSERVE_VARIANT_BUDGET = 40
    settings.MODELSERVE_MODELS_IN_MEMORY = 1
    register("a")
    register("b", seed=3)
    service = InProcessInference()
    first = service.classifier("a")
    assert (first.device, first.batch_size, first._cache_size, first.variant_budget) == (torch.device("cpu"), 3, 5, 40)
    service.classifier("b")
    assert list(service._loaded) == ["b"]  # one kept: "a" was dropped
    settings.MODELSERVE_DEVICE = "gpu"
    with pytest.raises(ValueError, match="MODELSERVE_DEVICE='gpu'"):
        InProcessInference().classifier("a")
