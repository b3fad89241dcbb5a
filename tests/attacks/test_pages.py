"""The attack pages in the test client, with HTMX headers as the browser sends them."""

import re

import pytest
from django.test import Client
from django.urls import reverse

from annotation.models import Role
from attacks import services
from attacks.models import Submission
from eventlog.models import Event
from tests.annotation.conftest import make_member
from tests.attacks.conftest import LETS_THROUGH

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
TEXT = {"prompt": "the knight walked home on the road .", "completion": "he fell and broke his arm ."}


@pytest.fixture
def tool_campaign(dataset, register, settings):
    settings.MODELSERVE_MIN_SIMILARITY = 0.5  # the tiny vocabulary has few words close to another
    register("page-v1", bias=LETS_THROUGH)
    return services.open_campaign(name="Rewrite", kind="tool_assisted", dataset=dataset, target_version="page-v1")


def open_page(client, campaign) -> str:
    page = client.get(reverse("attacks:attack_page", args=[campaign.pk]))
    assert page.status_code == 200
    return re.search(r"/attack/session/([0-9a-f-]{36})/score", page.content.decode()).group(1)


@pytest.fixture
def contractor_client(attackers):
    client = Client()
    client.force_login(attackers[0])
    return client


def url(name, session_id):
    return reverse(f"attacks:{name}", args=[session_id])


def test_the_page_lists_open_campaigns_and_starts_a_timed_session(contractor_client, tool_campaign):
    home = contractor_client.get(reverse("attacks:attack_home"))
    assert "Rewrite" in home.content.decode()
    session_id = open_page(contractor_client, tool_campaign)
    assert Event.objects.filter(type="attacks.session_started", stream_id=session_id).exists()


def test_the_score_partial_holds_the_score_the_submit_button_and_the_highlighted_words(contractor_client,
                                                                                       tool_campaign):
    session_id = open_page(contractor_client, tool_campaign)
    response = contractor_client.post(url("score", session_id), TEXT, **HTMX)
    html = response.content.decode()
    assert response.status_code == 200 and "<html" not in html  # a partial, not the page
    assert "below the threshold" in html
    assert not re.search(r"\sdisabled[\s>]", html.split("Submit attack")[0].rsplit("<button", 1)[1])
    words = re.findall(r'class="word" style="background: rgba\(230, 80, 0, ([0-9.]+)\)"', html)
    assert len(words) == len("the knight walked home on the road he fell and broke his arm".split())
    assert max(float(w) for w in words) == 1.0  # the most salient word is fully highlighted
    assert '"tool": "insertions"' in html and '"tool": "substitutions"' in html
    # The text between the words is shown as written: "road ." keeps its space and full stop.
    assert re.search(r'>road</button><button class="gap"[^>]*>\+</button> \.</p>', html)


def test_the_dropdown_lists_suggestions_sorted_by_score_and_one_click_applies_one(contractor_client, tool_campaign):
    session_id = open_page(contractor_client, tool_campaign)
    broke = 10  # the, knight, walked, home, on, the, road | he, fell, and, broke
    dropdown = contractor_client.post(url("suggest", session_id), {**TEXT, "tool": "substitutions", "index": broke},
                                      **HTMX)
    html = dropdown.content.decode()
    scores = [float(s) for s in re.findall(r'<span class="score">([0-9.]+)</span>', html)]
    assert dropdown.status_code == 200 and scores and scores == sorted(scores)
    assert "broke → <strong>" in html and "similarity 0." in html
    first = re.search(r'name="prompt" value="([^"]*)">\s*<input type="hidden" name="completion" value="([^"]*)">',
                      html)
    assert first.group(1) == TEXT["prompt"] and first.group(2).startswith("he fell and ")
    assert first.group(2).endswith(" his arm .") and "broke" not in first.group(2)
    applied = contractor_client.post(url("apply", session_id),
                                     {"prompt": first.group(1), "completion": first.group(2)}, **HTMX)
    assert applied.status_code == 200 and f">{first.group(2)}</textarea>" in applied.content.decode()
    last = Event.objects.filter(type="attacks.attempt_scored").latest("position")
    assert last.payload["completion"] == first.group(2)
    tools = list(Event.objects.filter(type="attacks.tool_queried").values_list("payload__tool", "payload__index"))
    assert ("substitutions", broke) in tools


def test_insertions_and_the_edit_map_answer_partials_and_bad_positions_a_clear_message(contractor_client,
                                                                                       tool_campaign):
    session_id = open_page(contractor_client, tool_campaign)
    for data in ({"tool": "insertions", "index": 3}, {"tool": "edit_map"}):
        response = contractor_client.post(url("suggest", session_id), {**TEXT, **data}, **HTMX)
        assert response.status_code == 200
        assert "lowest score first" in response.content.decode() or "No edit here" in response.content.decode()
    bad = contractor_client.post(url("suggest", session_id), {**TEXT, "tool": "substitutions", "index": 40}, **HTMX)
    assert bad.status_code == 400 and "There is no word 40" in bad.content.decode()


def test_a_submission_through_the_page_and_leaving_it(contractor_client, tool_campaign, attackers):
    session_id = open_page(contractor_client, tool_campaign)
    unticked = contractor_client.post(url("submit", session_id), TEXT, **HTMX)
    assert unticked.status_code == 400 and "tick" in unticked.content.decode()
    done = contractor_client.post(url("submit", session_id), {**TEXT, "injurious": "on"}, **HTMX)
    assert done.status_code == 200 and "Submitted" in done.content.decode()
    assert Submission.objects.get().user_id == attackers[0].pk
    assert contractor_client.post(url("leave", session_id), **HTMX).status_code == 204
    assert Event.objects.filter(type="attacks.session_left").count() == 1


def test_csrf_is_enforced(attackers, tool_campaign):
    client = Client(enforce_csrf_checks=True)
    client.force_login(attackers[0])
    session_id = open_page(client, tool_campaign)
    refused = client.post(url("score", session_id), TEXT, **HTMX)
    assert refused.status_code == 403
    token = client.cookies["csrftoken"].value
    accepted = client.post(url("score", session_id), TEXT, HTTP_X_CSRFTOKEN=token, **HTMX)
    assert accepted.status_code == 200


def test_only_the_sessions_contractor_may_use_it(contractor_client, tool_campaign, attackers, vendor):
    session_id = open_page(contractor_client, tool_campaign)
    other = Client()
    other.force_login(attackers[1])
    assert other.post(url("score", session_id), TEXT, **HTMX).status_code == 404
    manager = Client()
    manager.force_login(make_member("vm", Role.VENDOR_MANAGER, vendor))
    assert manager.get(reverse("attacks:attack_page", args=[tool_campaign.pk])).status_code == 403
    assert Client().get(reverse("attacks:attack_home")).status_code == 302  # to the login page


def test_without_htmx_a_post_answers_the_whole_page(contractor_client, tool_campaign):
    session_id = open_page(contractor_client, tool_campaign)
    response = contractor_client.post(url("score", session_id), TEXT)
    assert response.status_code == 200 and "<html" in response.content.decode()


def test_a_refused_submission_is_a_message_that_leaves_the_page_as_it_is(contractor_client, tool_campaign):
    """With HTMX the refusal is plain text, shown beside the button (nothing is swapped: the
    text, the tick and the score stay); without it the page comes back with the text."""
    session_id = open_page(contractor_client, tool_campaign)
    refused = contractor_client.post(url("submit", session_id), TEXT, **HTMX)  # not ticked
    assert refused.status_code == 400 and refused["Content-Type"].startswith("text/plain")
    assert refused.content.decode() == "tick that the snippet is injurious to submit it"
    page = contractor_client.post(url("submit", session_id), TEXT)
    html = page.content.decode()
    assert page.status_code == 400 and "Tick" in html
    assert f">{TEXT['prompt']}</textarea>" in html and f">{TEXT['completion']}</textarea>" in html


def test_htmx_errors_from_outside_the_views_are_plain_text_messages(contractor_client, tool_campaign, attackers):
    """A 404 raised for someone else's session, a CSRF failure, an expired login: each a short
    message (config/htmx_errors.py), never a whole page to swap into a part of one."""
    session_id = open_page(contractor_client, tool_campaign)
    other = Client()
    other.force_login(attackers[1])
    missing = other.post(url("score", session_id), TEXT, **HTMX)
    assert missing.status_code == 404 and missing.content.decode() == "no such attack session of yours"
    assert missing["Content-Type"].startswith("text/plain")

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(attackers[0])
    forged = strict.post(url("score", session_id), TEXT, HTTP_X_CSRFTOKEN="stale", **HTMX)
    assert forged.status_code == 403 and "reload the page" in forged.content.decode()
    assert "<html" not in forged.content.decode()

    logged_out = Client().post(url("score", session_id), TEXT, **HTMX)
    assert logged_out.status_code == 401 and "log in again" in logged_out.content.decode()
    assert Client().post(url("score", session_id), TEXT).status_code == 302  # a plain post: to the login page


def test_a_completion_of_two_sentences_is_pointed_out_and_map_entries_name_the_word_before(contractor_client,
                                                                                          tool_campaign):
    session_id = open_page(contractor_client, tool_campaign)
    two = contractor_client.post(url("score", session_id), {**TEXT, "completion": "he fell . he broke his arm ."},
                                 **HTMX).content.decode()
    assert "The completion holds 2 sentences: a completion is one sentence." in two
    one = contractor_client.post(url("score", session_id), TEXT, **HTMX).content.decode()
    assert "sentences:" not in one
    edit_map = contractor_client.post(url("suggest", session_id), {**TEXT, "tool": "edit_map"}, **HTMX).content.decode()
    entries = re.findall(r'<button>(?:<span class="muted">(\w+)</span> )?(\w+) → <strong>', edit_map)
    assert entries
    text = "the knight walked home on the road . he fell and broke his arm .".split()
    for before, word in entries:  # "the" appears twice: the word before tells which
        at = [i for i, w in enumerate(text) if w == word]
        assert any((text[i - 1] if i and text[i - 1] != "." else "") == before for i in at)
