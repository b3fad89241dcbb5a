"""Request-level idempotency: a command run with a key runs once; a retry gets the first result.

    result, replayed = run_once(scope="label.submit:user:7", key=key, request=data, command=do_it)

The key row is inserted first, in the command's transaction. A concurrent duplicate blocks
on the unique index until the first commits, then finds the stored result. The same key with
a different request raises IdempotencyKeyReused (HTTP 422, as the IETF Idempotency-Key draft).
"""

import hashlib
import json
from collections.abc import Callable
from typing import Any, TypeVar

from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction

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


def idempotent_api(view):
    """For a REST view: honour an `Idempotency-Key` header.

    The first response (status and body) is stored with the key, scoped to the user and the
    route; a retry gets it back with `Idempotent-Replayed: true`; the same key with a
    different body is answered 422. Without the header the view runs as usual.
    """
    from functools import wraps

    from rest_framework.response import Response

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        key = request.headers.get("Idempotency-Key", "").strip()
        if not key:
            return view(request, *args, **kwargs)
        if len(key) > 255:
            return Response({"detail": "Idempotency-Key is longer than 255 characters"}, status=400)
        scope = f"{request.resolver_match.view_name}:{request.user.pk}:{sorted(kwargs.items())}"

        def command():
            response = view(request, *args, **kwargs)
            if response.status_code >= 400:
                raise _Refused(response)
            return {"status": response.status_code, "body": response.data}

        try:
            stored, replayed = run_once(scope=scope, key=key, request=request.data, command=command)
        except IdempotencyKeyReused as exc:
            return Response({"detail": str(exc)}, status=exc.status_code)
        except _Refused as refused:  # errors are not stored: a corrected retry may succeed
            return refused.response
        response = Response(stored["body"], status=stored["status"])
        if replayed:
            response["Idempotent-Replayed"] = "true"
        return response

    return wrapped


class _Refused(Exception):
    def __init__(self, response):
        super().__init__(response.status_code)
        self.response = response
