"""The public page of the filtered generator ("talk to the filtered transformer"). Thin: it
calls the same service and throttle as the REST endpoint."""

import logging

from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from annotation import roles
from eventlog.idempotency import idempotent_page
from modelserve import filtering
from modelserve.api import FilteredGenerationThrottle
from modelserve.errors import InvalidPrompt, ModelserveError

logger = logging.getLogger(__name__)
TEMPLATE = "modelserve/talk.html"


@require_http_methods(["GET", "POST"])
@idempotent_page
def talk(request):
    context = {"pm": roles.is_pm(request.user), "max_prompt": filtering.MAX_PROMPT}
    if request.method == "GET":
        return render(request, TEMPLATE, context)
    template = f"{TEMPLATE}#answer" if request.htmx else TEMPLATE
    prompt = request.POST.get("prompt", "")
    context["prompt"] = prompt
    if not FilteredGenerationThrottle().allow_request(request, None):
        context["error"] = "Too many requests: please wait a minute."
        return render(request, template, context, status=429)
    try:
        result = filtering.filtered_completion(prompt, user_id=request.user.pk if request.user.is_authenticated else None)
    except InvalidPrompt as exc:
        context["error"] = str(exc)
        return render(request, template, context, status=400)
    except ModelserveError as exc:  # configuration or generator: details for project managers only
        logger.warning("filtered generation unavailable: %s", exc)
        context["error"] = str(exc) if context["pm"] else "The filtered generator is not available right now."
        return render(request, template, context, status=503)
    context["result"] = result
    return render(request, template, context)
