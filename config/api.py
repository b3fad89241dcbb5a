"""REST framework glue: every domain refusal becomes a clear 4xx with the same body shape."""

from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from annotation.errors import AnnotationError
from eventlog.errors import EventLogError


def exception_handler(exc, context):
    if isinstance(exc, AnnotationError | EventLogError):
        return Response({"detail": str(exc)}, status=exc.status_code)
    return drf_exception_handler(exc, context)
