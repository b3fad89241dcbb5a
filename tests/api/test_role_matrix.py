"""Every route under /api/v1/ against every role: the expected status, JSON error bodies, and
no data of one vendor's people shown to another vendor.

The routes come from the URL resolver, so a new route fails here until it is added to MATRIX
with the status each role should get.
"""

from dataclasses import dataclass, field

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

pytestmark = pytest.mark.django_db

API_PREFIX = "api/v1/"
ROLES = ("anonymous", "other_contractor", "vendor_manager", "pm", "contractor")  # in the order they ask


def api_routes() -> dict[str, str]:
    """Route name -> its full pattern, for every route under /api/v1/."""
    found = {}

    def walk(patterns, prefix):
        for entry in patterns:
            pattern = prefix + str(entry.pattern).lstrip("^")
            if isinstance(entry, URLResolver):
                walk(entry.url_patterns, pattern)
            elif isinstance(entry, URLPattern) and pattern.startswith(API_PREFIX):
                assert entry.name, f"API route {pattern!r} has no name"
                found[entry.name] = pattern

    walk(get_resolver().url_patterns, "")
    return found


@dataclass
class Row:
    method: str
    path: str  # formatted with the world: {dataset}, {task}, {version}, {run}
    expect: dict  # role -> status
    body: dict = field(default_factory=dict)


PM_ONLY = {"anonymous": 401, "contractor": 403, "other_contractor": 403, "vendor_manager": 403, "pm": 200}
EVERYONE = dict.fromkeys(ROLES, 200)
SNIPPET = {"prompt": "the knight walked home", "completion": "he fell off his horse ."}

MATRIX = {
    "api_schema": Row("get", "/api/v1/schema", EVERYONE),
    "api_docs": Row("get", "/api/v1/docs", EVERYONE),
    # labelling: contractors only; a task is only its holder's
    "api_next_task": Row("post", "/api/v1/work/{dataset}/label/next",
                         {"anonymous": 401, "contractor": 200, "other_contractor": 200, "vendor_manager": 403,
                          "pm": 403}),
    "api_answer": Row("post", "/api/v1/tasks/{task}/answer",
                      {"anonymous": 401, "contractor": 200, "other_contractor": 404, "vendor_manager": 403,
                       "pm": 403}, {"answer": "injurious"}),
    "api_skip": Row("post", "/api/v1/tasks/{task}/skip",
                    {"anonymous": 401, "contractor": 204, "other_contractor": 404, "vendor_manager": 403,
                     "pm": 403}),
    "api_progress": Row("get", "/api/v1/progress",
                        {"anonymous": 401, "contractor": 200, "other_contractor": 200, "vendor_manager": 403,
                         "pm": 403}),
    "api_agreement": Row("get", "/api/v1/datasets/{dataset}/agreement",
                         {"anonymous": 401, "contractor": 403, "other_contractor": 403, "vendor_manager": 200,
                          "pm": 200}),
    # inference and training: project managers only
    "model_score": Row("post", "/api/v1/models/{version}/score", PM_ONLY, {"snippets": [SNIPPET]}),
    "model_saliency": Row("post", "/api/v1/models/{version}/saliency", PM_ONLY, SNIPPET),
    "model_substitutions": Row("post", "/api/v1/models/{version}/substitutions", PM_ONLY,
                               {**SNIPPET, "index": 2, "limit": 3}),
    "model_insertions": Row("post", "/api/v1/models/{version}/insertions", PM_ONLY,
                            {**SNIPPET, "index": 2, "limit": 3}),
    "model_edit_map": Row("post", "/api/v1/models/{version}/edit-map", PM_ONLY, SNIPPET),
    "training_start": Row("post", "/api/v1/training-runs", {**PM_ONLY, "pm": 201},
                          {"version": "tiny-two", "base_model": "tiny-bert", "dataset_ids": ["{dataset}"]}),
    "training_run": Row("get", "/api/v1/training-runs/{run}", PM_ONLY),
    "training_cancel": Row("post", "/api/v1/training-runs/{run}/cancel", PM_ONLY),
    # the public filtered generator: anyone (rate-limited per visitor)
    "filtered_generation": Row("post", "/api/v1/generate/filtered", EVERYONE,
                               {"prompt": "the knight walked home", "seed": 1}),
    "evaluation_report": Row("post", "/api/v1/evaluation/report?classifiers={version}", {**PM_ONLY, "pm": 202}),
    "dataset_export": Row("get", "/api/v1/datasets/{dataset}/export.jsonl", PM_ONLY),
    # the event log holds everyone's work: users with eventlog.view_event (PM clients) only
    "event_feed": Row("get", "/api/v1/events?limit=5", PM_ONLY),
}


def test_the_matrix_names_no_route_that_is_gone():
    assert not set(MATRIX) - set(api_routes()), "rows of MATRIX for routes that no longer exist"


@pytest.mark.parametrize("name", sorted(api_routes()))
def test_each_role_gets_the_expected_status(name, world):
    pattern = api_routes()[name]
    if name not in MATRIX:
        pytest.fail(f"the API route {name!r} (/{pattern}) is not in the role matrix: add a row to MATRIX in "
                    f"{__name__.replace('.', '/')}.py with the status each role should get")
    row = MATRIX[name]
    values = {"dataset": world.dataset.pk, "task": world.held["contractor"], "version": world.version,
              "run": world.run.run_id}
    path = row.path.format(**values)
    body = {k: ([int(x.format(**values)) for x in v] if k == "dataset_ids" else v) for k, v in row.body.items()}
    got = {}
    for role in ROLES:
        response = getattr(world.client(role), row.method)(path, body, format="json") if row.method == "post" \
            else world.client(role).get(path)
        got[role] = response.status_code
        if response.status_code >= 400:
            assert response["Content-Type"].startswith("application/json"), (role, response)
            assert isinstance(response.json().get("detail"), str), (role, response.json())
    assert got == {role: row.expect[role] for role in ROLES}


def names(rows) -> set[str]:
    return {row["username"] for row in rows}


def test_agreement_shows_a_vendor_manager_only_their_vendors_people(world):
    path = f"/api/v1/datasets/{world.dataset.pk}/agreement"
    for_manager = world.client("vendor_manager").get(path).json()
    for_pm = world.client("pm").get(path).json()
    assert names(for_manager["labellers"]) == {"alice"}
    assert {row["vendor"] for row in for_manager["labellers"]} == {"Acme"}
    assert names(for_pm["labellers"]) == {"alice", "bob"}
    assert for_manager["progress"] == for_pm["progress"]  # counts of the dataset, naming no one


def test_progress_counts_only_the_contractors_own_work(world):
    from annotation import services

    services.submit_answer(user=world.users["other_contractor"], task_id=world.held["other_contractor"],
                           raw="injurious")
    alice = world.client("contractor").get("/api/v1/progress").json()
    bob = world.client("other_contractor").get("/api/v1/progress").json()
    assert [row["done"]["label"] for row in alice] == [3]
    assert [row["done"]["label"] for row in bob] == [4]
    assert all(set(row) == {"dataset", "name", "done"} for row in alice + bob)


def test_a_contractor_cannot_touch_another_vendors_task(world):
    task = world.held["contractor"]
    bob = world.client("other_contractor")
    for action, body in (("answer", {"answer": "injurious"}), ("skip", {})):
        response = bob.post(f"/api/v1/tasks/{task}/{action}", body, format="json")
        assert response.status_code == 404 and "alice" not in response.content.decode()
    assert world.client("contractor").post(f"/api/v1/tasks/{task}/answer", {"answer": "injurious"},
                                           format="json").status_code == 200


def test_the_filtered_generator_shows_its_rejected_draws_and_generator_only_to_pms(world):
    body = {"prompt": "the knight walked home", "seed": 3}
    for role in ("anonymous", "contractor", "vendor_manager"):
        answer = world.client(role).post("/api/v1/generate/filtered", body, format="json").json()
        assert not {"rejected_draws", "score", "generator"} & set(answer), role
    answer = world.client("pm").post("/api/v1/generate/filtered", body, format="json").json()
    assert {"rejected_draws", "score", "generator"} <= set(answer)
