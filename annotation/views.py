"""Contractor and oversight pages (HTMX). Thin: parse, authorise, call services/selectors."""

from uuid import UUID, uuid4

from django.http import Http404, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from annotation import roles, selectors, services
from annotation.errors import AnnotationError, TaskNotFound
from annotation.models import Dataset, Label, TaskKind
from eventlog.idempotency import idempotent_page

KINDS = {kind.value: kind for kind in TaskKind}


contractor_only = roles.role_required(roles.can_label, "only contractors take tasks")
overseer_only = roles.role_required(roles.can_oversee, "for vendor and project managers")


def _dataset(dataset_id: int) -> Dataset:
    return get_object_or_404(Dataset, pk=dataset_id, active=True)


def _kind(kind: str) -> str:
    if kind not in KINDS:
        raise Http404("no such kind of task")
    return kind


def _task_context(request, dataset, kind, task, error=None):
    labels = [Label.INJURIOUS, Label.NOT_INJURIOUS] + ([Label.UNSURE] if dataset.offer_unsure else [])
    context = {
        "dataset": dataset,
        "kind": kind,
        "task": task,
        "error": error,
        "progress": selectors.own_progress(request.user, dataset)[kind],
        "labels": [(str(i + 1), label.value, label.label) for i, label in enumerate(labels)],
        "ratings": [(str(r % 10), r) for r in range(1, 11)],
        "idempotency_key": uuid4().hex,  # a browser that posts the form again sends the same key
    }
    if task is not None:
        context.update(selectors.task_content(task))
    return context


def _render_task(request, dataset, kind, task, error=None, status=200):
    template = "annotation/task_page.html"
    if request.htmx:
        template += "#task"
    return render(request, template, _task_context(request, dataset, kind, task, error), status=status)


@require_GET
@contractor_only
def work_home(request):
    rows = []
    for dataset in selectors.datasets_for(request.user):
        done = selectors.own_progress(request.user, dataset)
        rows.append((dataset, [(kind.value, kind.label, done[kind.value]) for kind in TaskKind]))
    return render(request, "annotation/work_home.html", {"rows": rows, "kinds": TaskKind.choices})


@require_GET
@contractor_only
def task_page(request, dataset_id: int, kind: str):
    dataset, kind = _dataset(dataset_id), _kind(kind)
    try:
        task = services.next_task(user=request.user, dataset=dataset, kind=kind)
    except AnnotationError as exc:
        return _render_task(request, dataset, kind, None, error=str(exc), status=exc.status_code)
    return _render_task(request, dataset, kind, task)


@require_POST
@contractor_only
@idempotent_page
def answer(request, task_id: UUID):
    raw = request.POST.get("answer", "")
    return _act(
        request, task_id, lambda task: services.submit_answer(user=request.user, task_id=task_id, raw=raw, assignment=task)
    )


@require_POST
@contractor_only
@idempotent_page
def skip(request, task_id: UUID):
    return _act(request, task_id, lambda task: services.release_task(user=request.user, task_id=task_id))


def _act(request, task_id, action):
    try:
        task = selectors.own_task(request.user, task_id)
    except TaskNotFound:
        raise Http404("no such task of yours") from None
    dataset, kind = task.work_item.dataset, task.work_item.kind
    try:
        action(task)
    except AnnotationError as exc:
        task.refresh_from_db()
        if task.state != task.State.HELD and request.htmx:  # answered or gone: the message, and work to go on with
            try:
                task = services.next_task(user=request.user, dataset=dataset, kind=kind)
            except AnnotationError:
                task = None
        return _render_task(request, dataset, kind, task, error=str(exc), status=exc.status_code)
    if not request.htmx:
        return HttpResponseRedirect(reverse("annotation:task_page", args=[dataset.pk, kind]))
    next_one = services.next_task(user=request.user, dataset=dataset, kind=kind)
    return _render_task(request, dataset, kind, next_one)


@require_GET
@overseer_only
def oversee_home(request):
    rows = [(d, selectors.dataset_progress(d)) for d in selectors.datasets_for(request.user)]
    return render(request, "annotation/oversee_home.html", {"rows": rows})


@require_GET
@overseer_only
def oversee_dataset(request, dataset_id: int):
    dataset = _dataset(dataset_id)
    context = {
        "dataset": dataset,
        "progress": selectors.dataset_progress(dataset),
        "people": selectors.vendor_progress(request.user, dataset),
        "agreement": selectors.agreement(dataset, request.user),
    }
    return render(request, "annotation/oversee_dataset.html", context)


def home(request):
    role = roles.role_of(request.user)
    return render(request, "home.html", {"role": role})
