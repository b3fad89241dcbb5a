"""Request-level idempotency: a command run with a key runs once; a retry gets the first result.

    result, replayed = run_once(scope="label.submit:user:7", key=key, request=data, command=do_it)

The key row is inserted first, in the command's transaction. A concurrent duplicate blocks
on the unique index until the first commits, then finds the stored result. The same key with
a different request raises IdempotencyKeyReused (HTTP 422, as the IETF Idempotency-Key draft).
"""

import hashlib
import json
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from django.http import HttpResponse

from eventlog.errors import IdempotencyKeyReused
from eventlog.models import IdempotencyRecord

T = TypeVar("T")


def request_hash(request: Any) -> str:
    canonical = json.dumps(request, sort_keys=True, separators=(",", ":"), cls=DjangoJSONEncoder)
    return hashlib.sha256(canonical.encode()).hexdigest()


def run_once(*, scope: str, key: str, request: Any, command: Callable[[], T]) -> tuple[T, bool]:
    """Run `command` once per (scope, key). Returns (result, replayed).

    The result must be JSON-serialisable: it is what a retry receives.
    """
    digest = request_hash(request)
    with transaction.atomic():
        try:
            with transaction.atomic():
                record = IdempotencyRecord.objects.create(scope=scope, key=key, request_hash=digest)
        except IntegrityError:
            stored = IdempotencyRecord.objects.get(scope=scope, key=key)
            if stored.request_hash != digest:
                raise IdempotencyKeyReused(scope, key) from None
            return stored.result, True
        result = command()
        IdempotencyRecord.objects.filter(pk=record.pk).update(result=result)
        return result, False


KEY_HEADER = "Idempotency-Key"
KEY_FIELD = "idempotency_key"  # the same key as a form field, for pages posted without HTMX
MAX_KEY_LENGTH = 255


def idempotent_api(view):
    """For a REST view: honour an `Idempotency-Key` header.

    The first response (status and body) is stored with the key, scoped to the user and the
    route; a retry gets it back with `Idempotent-Replayed: true`; the same key with a
    different body is answered 422. Without the header the view runs as usual.
    """
    from rest_framework.response import Response

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        return _serve_once(
            view, request, args, kwargs,
            key=request.headers.get(KEY_HEADER, ""),
            body=request.data,
            record=lambda response: {"status": response.status_code, "body": _plain(response.data)},
            replay=lambda stored: Response(stored["body"], status=stored["status"]),
            refuse=lambda detail, status: Response({"detail": detail}, status=status),
        )

    IDEMPOTENT_VIEWS.add(_view_path(view))
    return wrapped


def idempotent_page(view):
    """For a page or HTMX partial that writes: the same contract as `idempotent_api`.

    The key comes from the `Idempotency-Key` header (the pages' script sets one on every HTMX
    post and reuses it when an element sends the same request again after a failure) or from
    a form field for forms posted without HTMX. The first response's status, content and HTMX
    headers are stored and replayed.
    """

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        return _serve_once(
            view, request, args, kwargs,
            key=request.headers.get(KEY_HEADER) or request.POST.get(KEY_FIELD, ""),
            body={name: request.POST.getlist(name) for name in sorted(request.POST)
                  if name not in (KEY_FIELD, "csrfmiddlewaretoken")},
            record=_record_page,
            replay=_replay_page,
            refuse=lambda detail, status: HttpResponse(detail, status=status, content_type="text/plain"),
        )

    IDEMPOTENT_VIEWS.add(_view_path(view))
    return wrapped


# Views wrapped by one of the two decorators ("module.name"): a test walks the URLconf and
# checks that every route that writes is among them.
IDEMPOTENT_VIEWS: set[str] = set()
_REPLAYED_HEADERS = ("Location", "HX-Trigger", "HX-Redirect", "HX-Retarget", "HX-Reswap")


def _view_path(view) -> str:
    return f"{view.__module__}.{view.__name__}"


def _serve_once(view, request, args, kwargs, *, key, body, record, replay, refuse):
    key = key.strip()
    if not key:
        return view(request, *args, **kwargs)
    if len(key) > MAX_KEY_LENGTH:
        return refuse(f"{KEY_HEADER} is longer than {MAX_KEY_LENGTH} characters", 400)
    if not key.isprintable():  # a NUL cannot even be stored
        return refuse(f"{KEY_HEADER} holds a control or other unprintable character", 400)
    scope = f"{request.resolver_match.view_name}:{request.user.pk}:{sorted(kwargs.items())}"

    def command():
        response = view(request, *args, **kwargs)
        if response.status_code >= 400:
            raise _Refused(response)
        return record(response)

    try:
        stored, replayed = run_once(scope=scope, key=key, request=body, command=command)
    except IdempotencyKeyReused as exc:
        return refuse(str(exc), exc.status_code)
    except _Refused as refused:  # errors are not stored: a corrected retry may succeed
        return refused.response
    response = replay(stored)
    if replayed:
        response["Idempotent-Replayed"] = "true"
    return response


def _plain(data: Any) -> Any:
    """What a stored response body reads back as: JSON types only (UUIDs, dates as strings)."""
    return json.loads(json.dumps(data, cls=DjangoJSONEncoder))


def _record_page(response) -> dict:
    return {
        "status": response.status_code,
        "content": response.content.decode(response.charset),
        "content_type": response["Content-Type"],
        "headers": {name: response[name] for name in _REPLAYED_HEADERS if response.has_header(name)},
    }


def _replay_page(stored: dict) -> HttpResponse:
    response = HttpResponse(stored["content"], status=stored["status"], content_type=stored["content_type"])
    for name, value in stored["headers"].items():
        response[name] = value
    return response


class _Refused(Exception):
    def __init__(self, response):
        super().__init__(response.status_code)
        self.response = response
