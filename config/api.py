"""REST framework glue: every refusal becomes a clear 4xx/5xx with the same JSON body shape.

Every error body under /api/ is an object with a `detail` string; a validation error keeps
its field errors beside it (`{"detail": "answer: This field is required.", "answer": [...]}`).
Routes that match nothing, and errors no view handled, get the same shape from the
`handler404` / `handler500` below (HTML pages stay HTML).
"""

import sys

from django.db import InterfaceError, OperationalError
from django.http import HttpResponse, JsonResponse
from django.views import defaults
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from config.errors import Refused
from config.text import text_problem

API_PREFIX = "/api/"


def exception_handler(exc, context):
    if isinstance(exc, Refused):  # every app's refusals: their message and their status
        return Response({"detail": str(exc)}, status=exc.status_code)
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(exc, ValidationError):
        response.data = _validation_body(response.data)
    return response


def _validation_body(data) -> dict:
    """Field errors as DRF gives them, plus a `detail` string that sums them up."""
    if isinstance(data, dict):
        detail = data.get("detail")
        if isinstance(detail, str):
            return data
        if detail is not None:  # a "detail" given as a list of messages
            return {**data, "detail": _text(detail)}
        summary = "; ".join(f"{field}: {_text(errors)}" if field != "non_field_errors" else _text(errors)
                            for field, errors in data.items())
        return {"detail": summary or "invalid input", **data}
    return {"detail": _text(data) or "invalid input"}


def _text(errors) -> str:
    if isinstance(errors, list | tuple):
        return " ".join(_text(e) for e in errors)
    if isinstance(errors, dict):
        return "; ".join(f"{k}: {_text(v)}" for k, v in errors.items())
    return str(errors)


def _is_api(request) -> bool:
    return request.path.startswith(API_PREFIX)


def page_not_found(request, exception):
    """handler404: JSON under /api/, Django's page elsewhere."""
    if _is_api(request):
        return JsonResponse({"detail": "Not found."}, status=404)
    return defaults.page_not_found(request, exception)


RETRY_AFTER_SECONDS = 2


def server_error(request):
    """handler500: JSON under /api/, Django's page elsewhere.

    An error because the database is unreachable (a restart, a failover) or because the
    transaction was a deadlock's victim is answered 503 with `Retry-After`: nothing was
    committed, and the same request (with the same Idempotency-Key) can be sent again. Django
    calls this while handling the exception, from whichever layer raised it (a view, or the
    session and authentication middleware, which read the database before any view)."""
    if isinstance(sys.exc_info()[1], OperationalError | InterfaceError):
        detail = "The database is unavailable for a moment: send the request again."
        response = JsonResponse({"detail": detail}, status=503) if _is_api(request) else HttpResponse(
            detail, status=503, content_type="text/plain; charset=utf-8")
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
    if _is_api(request):
        return JsonResponse({"detail": "A server error occurred."}, status=500)
    return defaults.server_error(request)


class _Strict:
    """Takes JSON strings only (DRF's CharField turns a number into text) and refuses what
    config.text refuses: NUL, the other control characters, lone surrogates."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        if problem := text_problem(data):
            raise ValidationError(f"This field {problem}.")
        return super().to_internal_value(data)


class TextField(_Strict, serializers.CharField):
    """A CharField for free text: strings only, no control characters."""


class SlugField(_Strict, serializers.SlugField):
    """A SlugField that takes strings only."""


# -- OpenAPI helpers shared by the REST modules ------------------------------------------

class ErrorSerializer(serializers.Serializer):
    """The body of every error response."""

    detail = serializers.CharField()


class ValidationErrorSerializer(serializers.Serializer):
    """A refused request: `detail` sums up; each invalid field also has its own list of messages."""

    detail = serializers.CharField()


def error(description: str) -> OpenApiResponse:
    return OpenApiResponse(ErrorSerializer, description=description)


def invalid(description: str = "invalid input (field errors beside `detail`)") -> OpenApiResponse:
    return OpenApiResponse(ValidationErrorSerializer, description=description)


UNAUTHENTICATED = error("no credentials, or invalid ones")
THROTTLED = error("too many requests; retry after the `Retry-After` header's seconds")


def errors(*codes: int, **described: str) -> dict:
    """Error responses for `extend_schema(responses=...)`: 401 and 429 always, plus `codes`.

    `described` overrides a description: `errors(403, 404, e404="no such dataset")`.
    """
    defaults_ = {400: "invalid input (field errors beside `detail`)", 403: "not allowed for this user",
                 404: "not found", 409: "conflict with the current state", 422: "Idempotency-Key reused",
                 503: "service unavailable"}
    out = {401: UNAUTHENTICATED, 429: THROTTLED}
    for code in codes:
        text = described.get(f"e{code}", defaults_.get(code, "error"))
        out[code] = invalid(text) if code == 400 else error(text)
    return dict(sorted(out.items()))


IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key", str, OpenApiParameter.HEADER, required=False,
    description="a retry with the same key gets the first response back (`Idempotent-Replayed: true`); "
                "the same key with a different body is answered 422",
)
