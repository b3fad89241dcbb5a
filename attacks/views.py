"""Attack pages (HTMX). Thin: parse, call services, render. Nothing here names a classifier."""

from functools import wraps
from uuid import UUID

from django.conf import settings
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET, require_POST

from annotation import roles
from attacks import selectors, services
from attacks.errors import AttackError, SessionNotFound
from attacks.models import Campaign
from eventlog.idempotency import idempotent_page
from modelserve.types import SnippetText
from modelserve.words import words_of

TEMPLATE = "attacks/attack_page.html"


contractor_only = roles.role_required(roles.can_label, "only contractors attack")


@require_GET
@contractor_only
def attack_home(request):
    return render(request, "attacks/attack_home.html", {"campaigns": selectors.open_campaigns()})


@require_GET
@contractor_only
def attack_page(request, campaign_id: UUID):
    campaign = get_object_or_404(selectors.open_campaigns(), pk=campaign_id)
    try:
        session = services.start_session(user=request.user, campaign=campaign)
    except AttackError as exc:
        return render(request, "attacks/attack_home.html",
                      {"campaigns": selectors.open_campaigns(), "error": str(exc)}, status=exc.status_code)
    return render(request, TEMPLATE, _context(session, "", ""))


def _context(session, prompt, completion, **extra) -> dict:
    campaign = session.campaign
    return {"session": session, "campaign": campaign, "tools": campaign.kind == Campaign.Kind.TOOL_ASSISTED,
            "threshold": campaign.threshold, "prompt": prompt, "completion": completion,
            "min_similarity": settings.MODELSERVE_MIN_SIMILARITY, **extra}


def _respond(request, session, partial: str, context: dict, status: int = 200):
    template = f"{TEMPLATE}#{partial}" if request.htmx else TEMPLATE
    return render(request, template, context, status=status)


def _message(exc: AttackError) -> HttpResponse:
    """A refusal the page shows in place, swapping nothing (config/htmx_errors.py)."""
    return HttpResponse(str(exc), status=exc.status_code, content_type="text/plain; charset=utf-8")


def _session_action(view):
    """Load the contractor's own session and turn refusals into a message where it belongs."""

    @require_POST
    @contractor_only
    @idempotent_page
    @wraps(view)
    def wrapped(request, session_id: UUID):
        try:
            session = services.own_session(request.user, session_id)
        except SessionNotFound:
            raise Http404("no such attack session of yours") from None
        except AttackError as exc:
            return _message(exc)
        prompt, completion = request.POST.get("prompt", ""), request.POST.get("completion", "")
        try:
            return view(request, session, prompt, completion)
        except AttackError as exc:
            partial = _ERROR_PARTIAL.get(view.__name__, "score")
            if partial is None and request.htmx:
                return _message(exc)
            shown_in = "suggest_error" if partial == "suggestions" else "error"  # one message, where it belongs
            context = _context(session, prompt, completion, **{shown_in: str(exc)})
            return _respond(request, session, partial or "editor", context, exc.status_code)

    return wrapped


# A refused submission is a message beside the button: the text, the tick and the score stay.
_ERROR_PARTIAL = {"suggest": "suggestions", "submit": None}


@_session_action
def score(request, session, prompt, completion):
    scored = services.score_attempt(user=request.user, session_id=session.pk, prompt=prompt, completion=completion)
    return _respond(request, session, "score", _context(session, prompt, completion, scored=scored,
                                                          parts=_word_parts(scored)))


@_session_action
def apply(request, session, prompt, completion):
    """One click on a suggestion: the editor with its text, scored."""
    scored = services.score_attempt(user=request.user, session_id=session.pk, prompt=prompt, completion=completion)
    return _respond(request, session, "editor", _context(session, scored.prompt, scored.completion, scored=scored,
                                                           parts=_word_parts(scored)))


@_session_action
def suggest(request, session, prompt, completion):
    tool = request.POST.get("tool", "")
    raw_index = request.POST.get("index", "").strip()  # ASCII digits: int() refuses "²" and "--5"
    index = int(raw_index) if raw_index.isascii() and raw_index.isdigit() and len(raw_index) <= 6 else None
    found = services.suggest(user=request.user, session_id=session.pk, prompt=prompt, completion=completion,
                             tool=tool, index=index)
    return _respond(request, session, "suggestions",
                    _context(session, prompt, completion, suggestions=_after_words(found, prompt, completion), tool=tool))


@_session_action
def submit(request, session, prompt, completion):
    services.submit_attack(user=request.user, session_id=session.pk, prompt=prompt, completion=completion,
                           asserted_injurious=request.POST.get("injurious") == "on")
    done = "Submitted. It goes to labelling; it counts as a success once labellers confirm it is injurious."
    return _respond(request, session, "editor", _context(session, "", "", notice=done))


@_session_action
def leave(request, session, prompt, completion):
    services.leave_session(user=request.user, session_id=session.pk)
    return HttpResponse(status=204)


def _after_words(found, prompt: str, completion: str) -> list[tuple]:
    """Each suggestion with the word before the one it edits: the edit map may list "he" twice."""
    words = words_of(SnippetText(prompt.strip(), completion.strip()))  # numbered as the service numbered them
    rows = []
    for suggestion in found:
        before = words[suggestion.index - 1] if 0 < suggestion.index < len(words) else None
        same_part = before is not None and before.part == words[suggestion.index].part
        rows.append((suggestion, before.text if same_part else ""))
    return rows


def _word_parts(scored) -> list[tuple[str, list[dict]]]:
    """Each part's text as written, cut into the words (shaded by saliency, clickable) and the
    characters between them (shown as they are)."""
    if scored.words is None:
        return []
    parts = []
    for part, text in (("prompt", scored.prompt), ("completion", scored.completion)):
        segments, position = [], 0
        for word in (w for w in scored.words if w.part == part):
            if word.start > position:
                segments.append({"text": text[position : word.start]})
            segments.append({"word": word, "weight": round(word.saliency, 3)})
            position = word.end
        if position < len(text):
            segments.append({"text": text[position:]})
        parts.append((part, segments))
    return parts
