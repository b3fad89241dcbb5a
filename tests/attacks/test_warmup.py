"""The classifiers of open campaigns are loaded and warmed when a web process starts."""

import importlib
import sys

import pytest

from attacks import services, warmup
from modelserve import interface

pytestmark = pytest.mark.django_db


@pytest.fixture
def fresh_inference(monkeypatch):
    service = interface.InProcessInference(capacity=5)
    monkeypatch.setattr(interface, "_instance", service)
    return service


def test_open_campaigns_classifiers_are_loaded_and_warmed_closed_ones_are_not(dataset, register, fresh_inference):
    for version in ("target", "exp-a", "exp-b", "closed"):
        register(version)
    services.open_campaign(name="One", kind="tool_assisted", dataset=dataset, target_version="target")
    services.open_campaign(name="Two", kind="manual", dataset=dataset, experiment_classifiers=["exp-a", "exp-b"])
    closed = services.open_campaign(name="Old", kind="manual", dataset=dataset, target_version="closed")
    services.close_campaign(campaign=closed)

    assert warmup.warm_open_campaign_classifiers() == ["exp-a", "exp-b", "target"]
    assert sorted(fresh_inference._loaded) == ["exp-a", "exp-b", "target"]
    for classifier in fresh_inference._loaded.values():
        assert classifier._onnx is not None  # the CPU runtime is built: the first score is fast
        assert classifier._encoder is not None  # and the sentence encoder is loaded for the first click
        assert classifier._cache  # a snippet went through


def test_a_classifier_that_cannot_load_is_skipped_with_a_warning(dataset, register, fresh_inference, caplog):
    from modelserve import registry

    register("gone")
    register("fine")
    services.open_campaign(name="A", kind="manual", dataset=dataset, target_version="gone")
    services.open_campaign(name="B", kind="manual", dataset=dataset, target_version="fine")
    registry.retire(version="gone")
    assert warmup.warm_open_campaign_classifiers() == ["fine"]
    assert "classifier gone was not warmed" in caplog.text


def test_the_web_process_starts_the_warm_up_unless_it_is_turned_off(monkeypatch, settings):
    started = []
    monkeypatch.setattr(warmup, "warm_in_background", lambda: started.append(True))
    sys.modules.pop("config.wsgi", None)
    importlib.import_module("config.wsgi")
    assert started == [True]
    monkeypatch.undo()
    settings.MODELSERVE_WARM_ON_START = False
    assert warmup.warm_in_background() is None
