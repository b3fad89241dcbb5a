import re
import uuid

from eventlog import context

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class EventMetadataMiddleware:
    """Binds the actor and a request id to every event appended while handling a request."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        supplied = request.headers.get("X-Request-ID", "")
        request_id = supplied if _REQUEST_ID.match(supplied) else uuid.uuid4().hex
        user = getattr(request, "user", None)
        actor = f"user:{user.pk}" if user is not None and user.is_authenticated else None
        with context.bind(actor=actor, request_id=request_id):
            response = self.get_response(request)
        response["X-Request-ID"] = request_id
        return response
