"""Error answers to HTMX requests become messages a page can show in place."""

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.test import RequestFactory

from config.htmx_errors import MESSAGES, HtmxErrorMessages

DOCUMENT = "<!DOCTYPE html><html><head><title>Error</title></head><body><h1>Too Many Requests</h1>{}</body></html>"


def answer(response, htmx=True):
    request = RequestFactory().post("/x", HTTP_HX_REQUEST="true" if htmx else "")
    return HtmxErrorMessages(lambda r: response)(request)


def test_a_whole_error_page_becomes_a_short_message_with_its_status():
    for status in (400, 403, 404, 409, 429, 500, 503):
        converted = answer(HttpResponse(DOCUMENT.format("settings, environment, traceback"), status=status))
        assert converted.status_code == status and converted["Content-Type"].startswith("text/plain")
        assert converted.content.decode() == MESSAGES[status]


def test_partials_plain_messages_successes_and_other_clients_pass_through():
    partial = HttpResponse('<p class="error">the prompt is too long</p>', status=400)
    assert answer(partial) is partial
    ok = HttpResponse(DOCUMENT.format(""))
    assert answer(ok) is ok
    page = HttpResponse(DOCUMENT.format(""), status=404)
    assert answer(page, htmx=False) is page


def test_a_login_redirect_is_a_401_message_and_raised_refusals_keep_their_reason():
    converted = answer(HttpResponseRedirect("/accounts/login/?next=/attack/"))
    assert converted.status_code == 401 and "log in again" in converted.content.decode()
    assert answer(HttpResponseRedirect("/work/")).status_code == 302

    middleware = HtmxErrorMessages(lambda r: None)
    request = RequestFactory().post("/x", HTTP_HX_REQUEST="true")
    missing = middleware.process_exception(request, Http404("no such task of yours"))
    assert missing.status_code == 404 and missing.content.decode() == "no such task of yours"
    refused = middleware.process_exception(request, PermissionDenied())
    assert refused.status_code == 403 and refused.content.decode() == MESSAGES[403]
    assert middleware.process_exception(request, ValueError("boom")) is None  # a 500: Django's handler, then a message
    assert middleware.process_exception(RequestFactory().post("/x"), Http404("x")) is None
