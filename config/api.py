"""REST framework glue: every domain refusal becomes a clear 4xx with the same body shape."""

from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from annotation.errors import AnnotationError
from eventlog.errors import EventLogError
from modelserve.errors import ModelserveError
from modelserve.generation import GenerationError
from modelserve.inference import InvalidInput


def exception_handler(exc, context):
    if isinstance(exc, AnnotationError | EventLogError | ModelserveError):
        return Response({"detail": str(exc)}, status=exc.status_code)
    if isinstance(exc, InvalidInput):
        return Response({"detail": str(exc)}, status=400)
    if isinstance(exc, GenerationError):
        return Response({"detail": f"the generator is unavailable: {exc}"}, status=503)
    return drf_exception_handler(exc, context)
