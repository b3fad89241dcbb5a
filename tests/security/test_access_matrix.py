"""Every URL pattern of the project against every role: pages, HTMX partials, downloads, the
auth pages and the admin (the routes under /api/v1/ are tests/api/test_role_matrix.py's MATRIX).

The routes come from the URL resolver: a new page, partial or download fails here until PAGES
has its expected statuses; a new ModelAdmin until PM_MAY says what a PM may do with it; a new
custom admin view until CUSTOM_ADMIN has it. Requests use Django's test client with real
sessions (force_login). Anonymous visitors of a page are sent to the login page; everyone who is
not staff is sent to the admin's login page by every admin route.
"""

from dataclasses import dataclass, field
from urllib.parse import quote as urlquote
from uuid import uuid4

import pytest
from django.contrib import admin
from django.contrib.admin.utils import quote
from django.contrib.auth.models import Group
from django.urls import URLResolver, get_resolver, resolve
from django.utils import timezone
from rest_framework.authtoken.models import Token

from annotation.models import Assignment
from tests.api.test_role_matrix import API_PREFIX
from tests.api.test_role_matrix import MATRIX as API_MATRIX
from tests.security.conftest import TEXT

pytestmark = pytest.mark.django_db

ROLES = ("anonymous", "other_contractor", "vendor_manager", "pm", "contractor")  # the owner last: it changes things
LOGIN = "login"  # 302 to the login page, coming back to the path asked for
REFUSED_FORM = (200, 400)  # an empty form posted: the form again, with its errors (nothing changes)
HTMX = {"HTTP_HX_REQUEST": "true"}


@dataclass(frozen=True)
class Route:
    pattern: str  # the full pattern as the resolver spells it
    name: str | None  # namespaced ("annotation:answer", "admin:index")


def all_routes() -> list[Route]:
    found = []

    def walk(entries, prefix, namespaces):
        for entry in entries:
            pattern = prefix + str(entry.pattern)
            if isinstance(entry, URLResolver):
                walk(entry.url_patterns, pattern, namespaces + ([entry.namespace] if entry.namespace else []))
            else:
                found.append(Route(pattern, ":".join([*namespaces, entry.name]) if entry.name else None))

    walk(get_resolver().url_patterns, "", [])
    return found


def page_routes() -> dict[str, str]:
    routes = {}
    for route in all_routes():
        if not route.pattern.startswith((API_PREFIX, "admin/")):
            assert route.name, f"the page route {route.pattern!r} has no name"
            routes[route.name] = route.pattern
    return routes


# ---------------------------------------------------------------------------------------------
# Pages, partials and downloads

@dataclass
class Case:
    method: str
    path: str  # formatted with {dataset}, {task}, {campaign}, {session}, {version}
    expect: dict  # role -> status, or LOGIN
    data: dict = field(default_factory=dict)
    headers: dict = field(default_factory=dict)


EVERYONE = dict.fromkeys(ROLES, 200)
SIGNED_IN = {**EVERYONE, "anonymous": LOGIN}
CONTRACTORS = {"anonymous": LOGIN, "other_contractor": 200, "vendor_manager": 403, "pm": 403, "contractor": 200}
# a task or an attack session held by "contractor": another contractor is told it does not exist
OWNER = {**CONTRACTORS, "other_contractor": 404}
OVERSEERS = {"anonymous": LOGIN, "other_contractor": 403, "vendor_manager": 200, "pm": 200, "contractor": 403}
PMS = {"anonymous": LOGIN, "other_contractor": 403, "vendor_manager": 403, "pm": 200, "contractor": 403}
REPORT = "?classifiers={version}"

PAGES = {
    "home": [Case("get", "/", EVERYONE)],
    "talk": [Case("get", "/talk/", EVERYONE),
             Case("post", "/talk/", EVERYONE, {"prompt": "the knight walked home"}, HTMX)],
    # django.contrib.auth's pages
    "login": [Case("get", "/accounts/login/", EVERYONE)],
    "logout": [Case("post", "/accounts/logout/", dict.fromkeys(ROLES, 302))],  # to the home page
    "password_change": [Case("get", "/accounts/password_change/", SIGNED_IN)],
    "password_change_done": [Case("get", "/accounts/password_change/done/", SIGNED_IN)],
    "password_reset": [Case("get", "/accounts/password_reset/", EVERYONE)],
    "password_reset_done": [Case("get", "/accounts/password_reset/done/", EVERYONE)],
    "password_reset_confirm": [Case("get", "/accounts/reset/MQ/not-a-token/", EVERYONE)],  # "invalid link"
    "password_reset_complete": [Case("get", "/accounts/reset/done/", EVERYONE)],
    # labelling
    "annotation:work_home": [Case("get", "/work/", CONTRACTORS)],
    "annotation:task_page": [Case("get", "/work/{dataset}/label/", CONTRACTORS),
                             Case("get", "/work/{dataset}/rating/", CONTRACTORS, headers=HTMX),
                             Case("get", "/work/{dataset}/nonsense/", {**CONTRACTORS, "contractor": 404,
                                                                       "other_contractor": 404})],
    "annotation:answer": [Case("post", "/work/task/{task}/answer", OWNER, {"answer": "injurious"}, HTMX)],
    "annotation:skip": [Case("post", "/work/task/{task}/skip", OWNER, {}, HTMX)],
    "annotation:oversee_home": [Case("get", "/oversee/", OVERSEERS)],
    "annotation:oversee_dataset": [Case("get", "/oversee/{dataset}/", OVERSEERS)],
    # attacks
    "attacks:attack_home": [Case("get", "/attack/", CONTRACTORS)],
    "attacks:attack_page": [Case("get", "/attack/{campaign}/", CONTRACTORS)],
    "attacks:score": [Case("post", "/attack/session/{session}/score", OWNER, TEXT, HTMX)],
    "attacks:suggest": [Case("post", "/attack/session/{session}/suggest", OWNER,
                             {**TEXT, "tool": "substitutions", "index": "11"}, HTMX)],
    "attacks:apply": [Case("post", "/attack/session/{session}/apply", OWNER, TEXT, HTMX)],
    "attacks:submit": [Case("post", "/attack/session/{session}/submit", OWNER, {**TEXT, "injurious": "on"}, HTMX)],
    "attacks:leave": [Case("post", "/attack/session/{session}/leave", {**OWNER, "contractor": 204}, {}, HTMX)],
    # evaluation: the page, the threshold page and every download
    "evaluation:report": [Case("get", "/evaluation/", PMS), Case("get", "/evaluation/" + REPORT, PMS),
                          Case("post", "/evaluation/" + REPORT, {**PMS, "pm": 302}, {})],
    "evaluation:thresholds": [Case("get", "/evaluation/thresholds/", PMS),
                              Case("post", "/evaluation/thresholds/", {**PMS, "pm": REFUSED_FORM}, {})],
    "evaluation:data": [Case("get", "/evaluation/report.json" + REPORT, PMS)],
    "evaluation:table": [Case("get", f"/evaluation/{name}.{fmt}" + REPORT, PMS)
                         for name in ("table2", "figure2", "figure3", "quality_checks") for fmt in ("csv", "json")],
    "evaluation:figure": [Case("get", f"/evaluation/{name}.{fmt}" + REPORT, PMS)
                          for name in ("figure2", "figure3") for fmt in ("png", "svg")],
}


def values(secured) -> dict:
    world = secured.world
    return {"dataset": world.dataset.pk, "task": world.held["contractor"], "campaign": secured.campaign_id,
            "session": secured.session_id, "version": world.version}


def ask(client, case: Case, path: str):
    if case.method == "get":
        return client.get(path, **case.headers)
    return client.post(path, case.data, **case.headers)


def check(response, expected, path: str, login_url: str, htmx: bool = False) -> str | None:
    """None if `response` is what was expected, else what went wrong. An HTMX request that needs
    a login is told so in a message (401), not sent to a login page to swap into a part of one."""
    if expected == LOGIN and htmx:
        if response.status_code == 401 and response["Content-Type"].startswith("text/plain"):
            return None
        return f"{response.status_code} ({response.get('Content-Type')}), expected a 401 message"
    if expected == LOGIN:
        location = response.get("Location", "")
        if response.status_code == 302 and location == f"{login_url}?next={urlquote(path, safe='/')}":
            return None
        return f"{response.status_code} to {location!r}, expected the login page"
    if response.status_code not in (expected if isinstance(expected, tuple) else (expected,)):
        return f"{response.status_code}, expected {expected}"
    return None


def test_every_route_of_the_project_has_an_expectation():
    missing = []
    for route in all_routes():
        if route.pattern.startswith(API_PREFIX):
            if route.name not in API_MATRIX:
                missing.append(f"/{route.pattern} ({route.name}): add a row to MATRIX in tests/api/test_role_matrix.py")
        elif route.pattern.startswith("admin/"):
            if admin_rule(route) is None:
                missing.append(f"/{route.pattern} ({route.name}): add it to PM_MAY, ADMIN_SITE or CUSTOM_ADMIN here")
        elif route.name not in PAGES:
            missing.append(f"/{route.pattern} ({route.name}): add it to PAGES here")
    assert not missing, "routes without expected statuses:\n" + "\n".join(missing)


def test_the_expectations_name_no_route_that_is_gone():
    assert not set(PAGES) - set(page_routes())
    assert not set(CUSTOM_ADMIN) - {route.pattern for route in all_routes()}
    assert not set(PM_MAY) - {model._meta.label_lower for model in admin.site._registry}


@pytest.mark.parametrize("name", sorted(page_routes()))
def test_each_role_gets_the_expected_status_from_every_page(name, secured):
    if name not in PAGES:
        pytest.fail(f"the route {name!r} (/{page_routes()[name]}) is not in PAGES: add the status each role gets")
    failures = []
    for case in PAGES[name]:
        path = case.path.format(**values(secured))
        assert resolve(path.split("?")[0]).view_name == name, (path, name)
        for role in ROLES:
            problem = check(ask(secured.client(role), case, path), case.expect[role], path, "/accounts/login/",
                            htmx=case.headers == HTMX)
            if problem:
                failures.append(f"{role} {case.method.upper()} {path}: {problem}")
    assert not failures, "\n".join(failures)


def test_the_login_page_that_anonymous_visitors_are_sent_to_answers(secured):
    response = secured.client("anonymous").get("/work/", follow=True)
    assert response.redirect_chain == [("/accounts/login/?next=/work/", 302)]
    assert response.status_code == 200 and b'name="password"' in response.content


def test_a_contractor_never_reaches_another_contractors_task_or_attack_session(secured):
    """Of the same vendor or another: 404, the same answer as for a task that does not exist."""
    task, session = secured.world.held["contractor"], secured.session_id
    posts = [(f"/work/task/{task}/answer", {"answer": "injurious"}), (f"/work/task/{task}/skip", {}),
             (f"/work/task/{uuid4()}/answer", {"answer": "injurious"})]
    posts += [(f"/attack/session/{session}/{action}", {**TEXT, "tool": "substitutions", "index": "11",
                                                       "injurious": "on"})
              for action in ("score", "suggest", "apply", "submit", "leave")]
    for role in ("colleague", "other_contractor"):
        client = secured.client(role)
        for path, data in posts:
            for headers in ({}, HTMX):
                response = client.post(path, data, **headers)
                assert response.status_code == 404, (role, path, response.status_code)
                assert b"he fell and broke" not in response.content and b"alice" not in response.content
    held = Assignment.objects.get(task_id=task)
    assert held.state == Assignment.State.HELD and held.user == secured.users["contractor"]
    assert secured.client("contractor").post(f"/work/task/{task}/answer", {"answer": "injurious"},
                                             **HTMX).status_code == 200


@pytest.mark.parametrize("path", ["/api/v1/datasets/{dataset}/export.csv"])
def test_the_api_routes_other_spelling_gets_the_same_statuses(path, secured):
    """dataset_export is a regex route (.jsonl | .csv): MATRIX asks for .jsonl, this for .csv."""
    from tests.api.test_role_matrix import ROLES as API_ROLES

    path = path.format(**values(secured))
    row = API_MATRIX[resolve(path).url_name]
    got = {role: secured.world.client(role).get(path).status_code for role in API_ROLES}
    assert got == {role: row.expect[role] for role in API_ROLES}


# ---------------------------------------------------------------------------------------------
# The admin

ADMIN_ROLES = ("anonymous", "contractor", "other_contractor", "vendor_manager", "staff_vendor_manager", "pm")
STAFF = ("staff_vendor_manager", "pm")
ADMIN_LOGIN = "admin login"  # 302 to /admin/login/?next=<path>

# What a PM (a staff user with the PM role and eventlog.view_event, no other Django permission)
# may do with each registered model: v(iew), a(dd), c(hange), d(elete). A staff user who is no
# PM may do nothing with any of them.
PM_MAY = {
    "auth.user": "", "auth.group": "",  # people are Members: PMs manage them there
    "authtoken.tokenproxy": "",
    "django_q.schedule": "", "django_q.success": "", "django_q.failure": "", "django_q.ormq": "",
    "axes.accessattempt": "", "axes.accesslog": "", "axes.accessfailurelog": "",  # with axes' permissions
    "eventlog.event": "v",  # the event browser: read-only, eventlog.view_event
    "eventlog.projectioncheckpoint": "", "eventlog.eventtypecount": "",
    "annotation.vendor": "vac", "annotation.member": "vac", "annotation.dataset": "vac",
    "annotation.snippet": "v", "annotation.assignment": "v",
    "attacks.campaign": "vac", "attacks.submission": "v", "attacks.paraphrasejob": "v",
    "modelserve.classifierversion": "v", "modelserve.trainingrun": "v", "modelserve.generationjob": "va",
}

STANDARD = {  # a ModelAdmin's own routes, after admin/<app>/<model>/
    "": "changelist", "add/": "add", "<path:object_id>/history/": "history",
    "<path:object_id>/delete/": "delete", "<path:object_id>/change/": "change", "<path:object_id>/": "object",
}


def standard_requests(kind: str, may: str) -> list[tuple[str, int]]:
    """(method, the staff user's status) for a standard route of a model `may` describes."""
    view = 200 if {"v", "c"} & set(may) else 403
    return {
        "changelist": [("get", view)],
        "add": [("get", 200 if "a" in may else 403), ("post", REFUSED_FORM if "a" in may else 403)],
        "change": [("get", view), ("post", REFUSED_FORM if "c" in may else 403)],
        "delete": [("get", 200 if "d" in may else 403)],
        "history": [("get", view)],
        "object": [("get", 302)],  # to the change page
    }[kind]


# The admin site's own routes: (method, path, {staff role: status}); non-staff get the login page.
ADMIN_SITE = {
    "admin/": [("get", "/admin/", {"staff_vendor_manager": 200, "pm": 200})],
    "admin/login/": [("get", "/admin/login/", {"anonymous": 200, "contractor": 200, "other_contractor": 200,
                                               "vendor_manager": 200, "staff_vendor_manager": 302, "pm": 302})],
    "admin/logout/": [("post", "/admin/logout/", dict.fromkeys(ADMIN_ROLES, 302))],  # anyone may log out
    "admin/password_change/": [("get", "/admin/password_change/", {"staff_vendor_manager": 200, "pm": 200})],
    "admin/password_change/done/": [("get", "/admin/password_change/done/",
                                     {"staff_vendor_manager": 200, "pm": 200})],
    "admin/autocomplete/": [("get", "/admin/autocomplete/", {"staff_vendor_manager": 403, "pm": 403})],
    "admin/jsi18n/": [("get", "/admin/jsi18n/", {"staff_vendor_manager": 200, "pm": 200})],
    "admin/r/<path:content_type_id>/<path:object_id>/": [("get", "/admin/r/999999/1/",
                                                          {"staff_vendor_manager": 404, "pm": 404})],
    "admin/(?P<url>.*)$": [("get", "/admin/no-such-page/", {"staff_vendor_manager": 404, "pm": 404})],
}

# Views ModelAdmins add: (method, path, {staff role: status}); "{object}" is an object of the model.
CUSTOM_ADMIN = {
    "admin/auth/user/<id>/password/": [("get", "/admin/auth/user/{object}/password/",
                                        {"staff_vendor_manager": 403, "pm": 403})],
    # PMOnly views refuse others by sending them to the admin index
    "admin/annotation/dataset/<int:pk>/import/": [("get", "/admin/annotation/dataset/{object}/import/",
                                                   {"staff_vendor_manager": 302, "pm": 200})],
    "admin/annotation/dataset/<int:pk>/comparisons/": [("get", "/admin/annotation/dataset/{object}/comparisons/",
                                                        {"staff_vendor_manager": 302, "pm": 200})],
    "admin/attacks/submission/paraphrase/": [("get", "/admin/attacks/submission/paraphrase/",
                                              {"staff_vendor_manager": 302, "pm": 200})],
    "admin/modelserve/trainingrun/start/": [("get", "/admin/modelserve/trainingrun/start/",
                                             {"staff_vendor_manager": 302, "pm": 200})],
    "admin/modelserve/trainingrun/<str:pk>/progress/": [("get", "/admin/modelserve/trainingrun/{object}/progress/",
                                                         {"staff_vendor_manager": 302, "pm": 200})],
}


def model_admins() -> dict[str, tuple]:
    """'app/model/' prefix -> (model, its ModelAdmin)."""
    return {f"admin/{m._meta.app_label}/{m._meta.model_name}/": (m, ma) for m, ma in admin.site._registry.items()}


def admin_rule(route: Route):
    """What decides the expected statuses of an admin route, or None if nothing does."""
    if route.pattern in ADMIN_SITE:
        return "site"
    if route.name == "admin:app_list":
        return "app_list"
    if route.pattern in CUSTOM_ADMIN:
        return "custom"
    for prefix, (model, _) in model_admins().items():
        rest = route.pattern.removeprefix(prefix)
        if rest != route.pattern and rest in STANDARD and model._meta.label_lower in PM_MAY:
            return "standard"
    return None


def make_admin_objects(secured):
    """One object of every registered model (read models written directly: only their admin pages are read)."""
    from axes.models import AccessAttempt, AccessFailureLog, AccessLog
    from django_q.models import OrmQ, Schedule, Task

    from attacks import services as attacks
    from attacks.models import ParaphraseJob
    from eventlog.models import EventTypeCount, ProjectionCheckpoint
    from modelserve.models import GenerationJob

    now, users = timezone.now(), secured.users
    Group.objects.create(name="reviewers")
    Token.objects.get_or_create(user=users["contractor"])
    Schedule.objects.create(name="nightly", func="math.floor", args="1")
    for success in (True, False):
        Task.objects.create(id=uuid4().hex, name=f"task-{success}", func="math.floor", started=now, stopped=now,
                            success=success)
    OrmQ.objects.create(key="advtrain", payload="not a task", lock=now)
    access = {"user_agent": "test", "ip_address": "10.0.0.9", "username": "alice", "http_accept": "*/*",
              "path_info": "/accounts/login/"}
    AccessAttempt.objects.create(**access, get_data="", post_data="", failures_since_start=1)
    AccessLog.objects.create(**access)
    AccessFailureLog.objects.create(**access)
    ProjectionCheckpoint.objects.get_or_create(name="security.test")
    EventTypeCount.objects.get_or_create(type="security.test")
    attacks.submit_attack(user=users["other_contractor"], session_id=secured.other_session_id,
                          **TEXT, asserted_injurious=True)
    GenerationJob.objects.create(id=uuid4(), kind="completions", generator="fake", spec={}, prompts=1,
                                 stream_version=1, started_at=now, updated_at=now)
    ParaphraseJob.objects.create(id=uuid4(), campaign_id=secured.campaign_id, source_snippet_id=uuid4(),
                                 version="tiny-open", threshold=0.05, few_shot_prompt="{prompt}", goal=5, budget=10,
                                 stream_version=1, requested_at=now, updated_at=now)


def admin_requests(secured) -> list[tuple[str, str, dict]]:
    """(method, path, {staff role: status}) for every admin route of the URLconf."""
    requests = []
    admins = model_admins()
    for route in all_routes():
        if not route.pattern.startswith("admin/"):
            continue
        rule = admin_rule(route)
        assert rule, f"/{route.pattern}: no expectation (test_every_route_of_the_project_has_an_expectation)"
        if rule == "site":
            requests += ADMIN_SITE[route.pattern]
        elif rule == "app_list":
            for label in sorted({m._meta.app_label for m in admin.site._registry}):
                pm = 200 if any(may and key.startswith(f"{label}.") for key, may in PM_MAY.items()) else 404
                requests.append(("get", f"/admin/{label}/", {"staff_vendor_manager": 404, "pm": pm}))
        else:
            prefix = next(p for p in admins if route.pattern.startswith(p))
            model, _ = admins[prefix]
            obj = model._default_manager.first()
            assert obj is not None, f"no {model._meta.label} to ask for: add one in make_admin_objects"
            if rule == "custom":
                requests += [(method, path.format(object=quote(str(obj.pk))), expect)
                             for method, path, expect in CUSTOM_ADMIN[route.pattern]]
                continue
            rest = route.pattern.removeprefix(prefix)
            path = f"/{prefix}{rest.replace('<path:object_id>', quote(str(obj.pk)))}"
            kind, may = STANDARD[rest], PM_MAY[model._meta.label_lower]
            for (method, pm), (_, other) in zip(standard_requests(kind, may), standard_requests(kind, "")):
                requests.append((method, path, {"staff_vendor_manager": other, "pm": pm}))
    return requests


def counts() -> dict[str, int]:
    return {model._meta.label: model._default_manager.count() for model in admin.site._registry}


def test_every_admin_route_refuses_all_but_staff_and_gives_pms_what_their_admin_allows(secured):
    make_admin_objects(secured)
    before = counts()
    failures, asked = [], 0
    for method, path, expect in admin_requests(secured):
        for role in ADMIN_ROLES:
            expected = expect.get(role, ADMIN_LOGIN if role not in STAFF else None)
            assert expected is not None, (path, role)
            client = secured.client(role)
            response = client.get(path) if method == "get" else client.post(path, {})
            asked += 1
            problem = check(response, LOGIN if expected == ADMIN_LOGIN else expected, path, "/admin/login/")
            if problem:
                failures.append(f"{role} {method.upper()} {path}: {problem}")
    assert asked > 6 * 100
    assert not failures, "\n".join(failures)
    assert counts() == before  # empty forms and refusals changed nothing
