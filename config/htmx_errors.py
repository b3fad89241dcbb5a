"""Errors of HTMX requests as plain-text messages, which a page shows in the region that asked.

A page's own refusals come back as partials (the attack editor with its text and the reason,
the labelling task with its message); everything else that can answer an HTMX request with an
error (a 404 or 403 raised by a decorator, a CSRF failure, an expired login, Django's own
error pages with `DJANGO_DEBUG` on or off) would otherwise swap a whole document, or a bare
string, into a part of the page. Here each becomes `text/plain` with a message a contractor
can act on; the script in `templates/base.html` shows any plain-text error answer in place,
without swapping, so the page, its shortcuts and the text being written stay as they were.
"""

from django.conf import settings
from django.core.exceptions import PermissionDenied, SuspiciousOperation
from django.http import Http404, HttpResponse
from django.shortcuts import resolve_url
from django.views.csrf import csrf_failure as django_csrf_failure

MESSAGES = {
    400: "The request was refused.",
    401: "You have been logged out: log in again in another tab, then try again (your text here is kept).",
    403: "You are not allowed to do this.",
    404: "Not found: it may have been removed, or it is not yours.",
    409: "This changed in the meantime: reload the page.",
    429: "Too many requests: wait a moment, then try again.",
    500: "Something went wrong on our side. Try again in a moment; your text here is kept.",
    503: "The service is busy: try again in a minute.",
}


def message(text: str, status: int) -> HttpResponse:
    return HttpResponse(text, status=status, content_type="text/plain; charset=utf-8")


def _is_htmx(request) -> bool:
    return request.headers.get("HX-Request") == "true"


def _is_document(response) -> bool:
    if response.streaming or not response.get("Content-Type", "").startswith("text/html"):
        return False
    head = response.content[:4096].lower()
    return b"<html" in head or b"<!doctype" in head


class HtmxErrorMessages:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if not _is_htmx(request):
            return response
        if response.status_code == 302 and response.get("Location", "").startswith(resolve_url(settings.LOGIN_URL)):
            return message(MESSAGES[401], 401)
        if response.status_code >= 400 and _is_document(response):
            return message(MESSAGES.get(response.status_code, MESSAGES[500]), response.status_code)
        return response

    def process_exception(self, request, exception):
        """Keep the reason a view gave ("no such attack session of yours")."""
        if not _is_htmx(request):
            return None
        for kind, status in ((Http404, 404), (PermissionDenied, 403), (SuspiciousOperation, 400)):
            if isinstance(exception, kind):
                reason = str(exception) if kind is not SuspiciousOperation else ""
                return message(reason or MESSAGES[status], status)
        return None


def csrf_failure(request, reason=""):
    """CSRF_FAILURE_VIEW: a page left open across a new login (or a cleared cookie) posts a
    token that no longer matches."""
    if _is_htmx(request):
        return message("This page is out of date (you logged in again elsewhere, or your cookies were "
                       "cleared): copy your text, then reload the page.", 403)
    return django_csrf_failure(request, reason=reason)
