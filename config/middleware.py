"""Requests no view can take, refused before any view sees them.

Django decodes a form body or query string that is not UTF-8 with replacement characters, so
a view would store mangled text as if it had been typed (400); a form body over
`DATA_UPLOAD_MAX_MEMORY_SIZE` is refused by Django only when a view reads it (400); and a
control character in the path (`/api/v1/models/%00/score`) would reach the database, which
cannot hold a NUL, looking for something that cannot exist (404). The answer is JSON with a
`detail` under /api/ (as every API error), plain text elsewhere (a page's HTMX partial shows
it).
"""

import re
from urllib.parse import unquote_to_bytes

from django.core.exceptions import RequestDataTooBig
from django.http import HttpResponse, JsonResponse

from config.api import API_PREFIX

FORM = "application/x-www-form-urlencoded"
_CONTROL = re.compile("[\x00-\x1f\x7f]")


class RefuseUnreadableRequests:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if _CONTROL.search(request.path):
            return _refuse(request, "Not found.", 404)
        problem = _problem(request)
        if problem is None:
            return self.get_response(request)
        return _refuse(request, problem, 400)


def _refuse(request, detail: str, status: int):
    if request.path.startswith(API_PREFIX):
        return JsonResponse({"detail": detail}, status=status)
    return HttpResponse(detail, status=status, content_type="text/plain; charset=utf-8")


def _problem(request) -> str | None:
    # WSGI hands the query string over as latin-1 text: its bytes are what the client sent.
    parts = [request.META.get("QUERY_STRING", "").encode("latin-1", "replace")]
    if request.method == "POST" and request.content_type == FORM:
        try:
            parts.append(request.body)
        except RequestDataTooBig:
            return "the request body is too large"
    for raw in parts:
        try:
            unquote_to_bytes(raw.replace(b"+", b" ")).decode("utf-8")
        except UnicodeDecodeError:
            return "the request is not valid UTF-8"
    return None
