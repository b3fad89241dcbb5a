"""Bad input, generated (hypothesis), on every write route: the HTMX pages, the admin's own forms
and the REST API.

Oversize text, control characters and NUL bytes, lone surrogates (JSON escapes), raw invalid
UTF-8 bodies, wrong JSON types, missing fields, huge or non-finite numbers, malformed JSON,
bad idempotency keys and unknown ids are each answered with a 4xx: never a 5xx, never a 2xx
(nor a redirect, the admin's answer to success); API refusals are JSON with a string
`detail`; and nothing is written: no event, no idempotency record, no row of any table of the
project's apps (one query counts them all before and after). Each request runs in a
savepoint rolled back afterwards, so a request that did write (a bug) leaves the next example
the same world.

tests/api/test_schemathesis.py sends schema-conforming requests to the API; this file sends
requests outside the schema, and those of the pages and forms schemathesis does not see. A
test draws requests of one area (`Req`: who, where, what); examples are derandomised (the same
on every run) so that the suite stays fast and stable, and the @example()s pin inputs that
once got a 5xx or were accepted.
"""

import json
import string
from dataclasses import dataclass
from urllib.parse import quote, quote_from_bytes

import pytest
from django.apps import apps
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection, transaction
from django.test import Client
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from rest_framework.authtoken.models import Token
from rest_framework.throttling import UserRateThrottle

from annotation import services as annotation
from annotation.events import MAX_TEXT
from annotation.models import Dataset, Snippet
from attacks import services as attacks
from modelserve.filtering import MAX_PROMPT
from tests.api.conftest import World, client_for, fresh_throttles, no_job_queue, world  # noqa: F401 - fixtures

pytestmark = pytest.mark.django_db

HTMX = (("HTTP_HX_REQUEST", "true"),)
FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
FOUR_XX = tuple(range(400, 500))


def fuzz(examples: int):
    return settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                           HealthCheck.data_too_large, HealthCheck.filter_too_much])


# -- the world: held tasks of each kind, attack sessions, a staff project manager --------------

@dataclass
class Bad:
    world: World
    ids: dict  # what paths name: {label}, {comparison}, {rating}, {other_task}, {session}, {campaign}, ...

    def client(self, role: str, api: bool):
        user = self.world.users[role]
        if api:
            return client_for(user)
        client = Client()
        if user is not None:
            client.force_login(user)
        return client


@pytest.fixture
def bad(world, register, monkeypatch) -> Bad:  # noqa: F811 - the fixture imported above
    monkeypatch.setattr(UserRateThrottle, "rate", "100000/min", raising=False)
    contractor, pm = world.users["contractor"], world.users["pm"]
    pm.is_staff = pm.is_superuser = True
    pm.save()
    pairs = Dataset.objects.create(name="pairs")
    annotation.import_snippets(dataset=pairs, filename="pairs.jsonl", rows=[
        annotation.SnippetInput("one prompt", f"completion {i}.", "initial", "train", i + 1) for i in range(3)])
    annotation.create_comparisons(dataset=pairs, pairs_per_prompt=4)
    annotation.request_ratings(dataset=pairs, snippet_ids=list(Snippet.objects.filter(dataset=pairs)
                                                               .values_list("pk", flat=True)))
    ids = {"label": world.held["contractor"], "other_task": world.held["other_contractor"],
           "dataset": world.dataset.pk, "pairs": pairs.pk, "version": world.version}
    for kind in ("comparison", "rating"):
        ids[kind] = annotation.next_task(user=contractor, dataset=pairs, kind=kind).task_id
    campaign = attacks.open_campaign(name="Rewrite", kind="tool_assisted", dataset=world.dataset,
                                     target_version=world.version)
    ids["campaign"] = campaign.pk
    ids["session"] = attacks.start_session(user=contractor, campaign=campaign).pk
    ids["other_session"] = attacks.start_session(user=world.users["other_contractor"], campaign=campaign).pk
    ids["paraphrase_campaign"] = attacks.open_campaign(name="Paraphrases", kind="paraphrase", dataset=world.dataset,
                                                       target_version=world.version).pk
    register("tiny-b")  # a second ready classifier: experiments
    for user in world.users.values():  # API tokens exist before the first request (client_for makes them)
        if user is not None:
            Token.objects.get_or_create(user=user)
    return Bad(world, ids)


# -- one request, and what must hold of its answer ------------------------------------------

@dataclass(frozen=True)
class Req:
    """A request with placeholders ({label}, {session}, ...) filled in from the world when sent.

    `data`: a dict is a form (or, with `api`, a JSON body); bytes are sent as the body as they
    are, with `content_type`. `files`: (field, file name, content) uploads of a form.
    """

    role: str
    path: str
    data: dict | bytes | None = None
    content_type: str | None = None
    headers: tuple = ()
    files: tuple = ()
    api: bool = False
    method: str = "POST"
    statuses: tuple = FOUR_XX

    def send(self, bad: Bad):
        path = self.path.format(**bad.ids)
        client = bad.client(self.role, self.api)
        headers = dict(self.headers)
        if self.method == "GET":
            return client.get(path, **headers)
        if isinstance(self.data, bytes):
            return client.generic("POST", path, self.data, content_type=self.content_type or JSON, **headers)
        data = fill(self.data, bad.ids)
        if self.api:
            return client.generic("POST", path, json.dumps(data).encode(), content_type=JSON, **headers)
        data = {**(data or {}), **{name: SimpleUploadedFile(filename, content) for name, filename, content in self.files}}
        return client.post(path, data, **headers)


def fill(value, ids: dict):
    """A value with each placeholder string ("{dataset}") replaced by the world's id."""
    if isinstance(value, str) and value[:1] == "{" and value[-1:] == "}" and value[1:-1] in ids:
        return ids[value[1:-1]]
    if isinstance(value, list):
        return [fill(v, ids) for v in value]
    if isinstance(value, dict):
        return {k: fill(v, ids) for k, v in value.items()}
    return value


def _tables() -> list[str]:
    tables = set()
    for label in ("eventlog", "annotation", "attacks", "modelserve", "evaluation", "django_q", "auth", "authtoken"):
        tables |= {m._meta.db_table for m in apps.get_app_config(label).get_models()
                   if m._meta.managed and not m._meta.proxy}
    return sorted(tables)


def snapshot() -> tuple:
    """Row counts of every table of the project's apps, and the log's head, in one query."""
    tables = _tables()
    counts = ", ".join(f"(SELECT count(*) FROM {connection.ops.quote_name(t)})" for t in tables)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT (SELECT max(position) FROM eventlog_event), {counts}")
        return tuple(zip(["head", *tables], cursor.fetchone(), strict=True))


class _Undo(Exception):
    pass


def check_refused(bad: Bad, req: Req):
    """Send `req` in a savepoint: it must be refused (one of its statuses) and write nothing."""
    cache.clear()  # throttles and rate limits count in the cache
    before = snapshot()
    try:
        with transaction.atomic():
            response = req.send(bad)
            after = snapshot()
            raise _Undo
    except _Undo:
        pass
    assert response.status_code in req.statuses, f"{response.status_code}: {response.content[:400]!r}"
    written = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
    assert not written, f"a refused request wrote {written}"
    if req.api:
        assert response["Content-Type"] == JSON, response["Content-Type"]
        assert isinstance(response.json().get("detail"), str) and response.json()["detail"]
    elif dict(req.headers).get("HTTP_HX_REQUEST") and response.status_code == 400 \
            and response["Content-Type"].startswith("text/html"):
        assert b"<html" not in response.content  # an HTMX post gets its partial, with the message
    return response


# -- generated values --------------------------------------------------------------------------

CONTROL = [chr(c) for c in range(0x20) if chr(c) not in "\t\n\r"] + ["\x7f"]
WORDS = st.text(alphabet=string.ascii_lowercase + " .,", min_size=1, max_size=20)
with_control = st.builds(lambda a, c, b: f"the knight {a}{c}{b} fell", WORDS, st.sampled_from(CONTROL), WORDS)


def longer_than(limit: int):
    return st.builds(lambda n, word: (word * (n // len(word) + 1))[:n],
                     st.integers(limit + 1, limit + 100), st.sampled_from(["knight ", "a", "é ", "a\n"]))


blank = st.sampled_from(["", " ", "\n\t ", "\u3000\u2003"])
bad_text = st.one_of(with_control, longer_than(MAX_TEXT), blank)
INVALID_UTF8 = [b"\xff", b"\xfe\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x80", b"\xe2\x82",
                b"\xc0\xaf"]
invalid_utf8 = st.builds(lambda a, bad, b: a.encode() + bad + b.encode(), WORDS, st.sampled_from(INVALID_UTF8),
                         WORDS)
odd_numbers = st.sampled_from(["2**70", str(2**70), str(-(2**70)), "9" * 5000, "-1", "0", "1.5", "1e3", "NaN", "nan",
                               "inf", "-inf", "Infinity", "²", "٣", "--5", "0x10", "", " ", "1_000"])
wrong_json = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**80), max_value=2**80),
                       st.floats(allow_nan=False, allow_infinity=False), st.lists(st.integers(), max_size=3),
                       st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
MALFORMED_JSON = [b"{", b'{"answer": ', b"{'answer': 'x'}", b'{"answer": NaN}', b'{"answer": Infinity}',
                  b'{"prompt": "x", "completion": -Infinity}', b'{"a": 1} trailing', b"\x00", b"[1, 2",
                  b'{"seed": 1' + b"0" * 5000 + b"}"]
BAD_KEYS = ["k\x00", "k" * 256, "bell\x07", "line\u2028separator"]


def form_bytes(fields: dict) -> bytes:
    """A urlencoded body whose values are raw bytes, percent-encoded (as a browser sends them)."""
    return b"&".join(k.encode() + b"=" + quote_from_bytes(v).encode() for k, v in fields.items())


def raw_form(fields: dict, encoded: bool) -> bytes:
    if encoded:
        return form_bytes(fields)
    return b"&".join(k.encode() + b"=" + v for k, v in fields.items())


def oversize_form(role: str, path: str, api: bool = False) -> Req:
    """A form body over DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB)."""
    body = b"prompt=" + b"k" * 2_700_000 + b"&completion=x&answer=" + b"k" * 100
    return Req(role, path, body, FORM, api=api)


# -- labelling pages --------------------------------------------------------------------------

VALID_ANSWERS = {"label": {"injurious", "not_injurious", "unsure"}, "comparison": {"first", "second", "same"}}


def is_valid_answer(kind: str, raw) -> bool:
    if not isinstance(raw, str):
        return False
    if kind != "rating":
        return raw in VALID_ANSWERS[kind]
    text = raw.strip()
    return len(text) <= 2 and text.isascii() and text.isdigit() and 1 <= int(text) <= 10


answers = st.one_of(bad_text, odd_numbers, st.text(max_size=40), st.sampled_from(
    ["INJURIOUS", "injurious ", "First", "11", "10.0", "07.5", "<b>1</b>", "1; DROP TABLE x"]))
KINDS = st.sampled_from(["label", "comparison", "rating"])


@st.composite
def labelling_page_requests(draw) -> Req:
    kind = draw(KINDS)
    answer_path, skip_path = f"/work/task/{{{kind}}}/answer", f"/work/task/{{{kind}}}/skip"
    headers = draw(st.sampled_from([(), HTMX]))
    case = draw(st.sampled_from(["answer", "answer", "answer", "missing", "utf8", "unknown", "key", "oversize"]))
    if case == "answer":
        answer = draw(answers.filter(lambda a: not is_valid_answer(kind, a)))
        return Req("contractor", answer_path, {"answer": answer}, headers=headers)
    if case == "missing":
        return Req("contractor", answer_path, {"Answer": "injurious"}, headers=headers)
    if case == "utf8":
        return Req("contractor", answer_path, raw_form({"answer": draw(invalid_utf8)}, draw(st.booleans())), FORM,
                   headers=headers)
    if case == "unknown":
        task = draw(st.sampled_from(["{other_task}", str(draw(st.uuids()))]))
        path = f"/work/task/{task}/" + draw(st.sampled_from(["answer", "skip"]))
        return Req("contractor", path, {"answer": "injurious"}, headers=headers, statuses=(404,))
    if case == "key":
        key, path = draw(st.sampled_from(BAD_KEYS)), draw(st.sampled_from([answer_path, skip_path]))
        data = {"answer": {"label": "injurious", "comparison": "first", "rating": "7"}[kind]}
        if draw(st.booleans()):
            return Req("contractor", path, data, headers=(*headers, ("HTTP_IDEMPOTENCY_KEY", key)))
        return Req("contractor", path, {**data, "idempotency_key": key}, headers=headers)
    return oversize_form("contractor", answer_path)


@given(req=labelling_page_requests())
@example(req=Req("contractor", "/work/task/{rating}/answer", {"answer": "²"}, headers=HTMX))
@example(req=Req("contractor", "/work/task/{rating}/answer", {"answer": "9" * 5000}))
@example(req=Req("contractor", "/work/task/{label}/answer", {"answer": "injurious", "idempotency_key": "k\x00"}))
@fuzz(40)
def test_the_labelling_pages_refuse_bad_input(bad, req):
    check_refused(bad, req)


# -- attack pages -----------------------------------------------------------------------------

GOOD = {"prompt": "the knight walked home on the road .", "completion": "he fell and broke his arm ."}
SESSION = "/attack/session/{session}/"


@st.composite
def attack_page_requests(draw) -> Req:
    route = draw(st.sampled_from(["score", "apply", "suggest", "submit"]))
    headers = draw(st.sampled_from([(), HTMX]))
    data = {**GOOD, "injurious": "on", "tool": "edit_map"}
    case = draw(st.sampled_from(["text", "text", "text", "missing", "utf8", "unknown", "key", "oversize"]
                                + (["tool", "tool"] if route == "suggest" else [])
                                + (["unticked"] if route == "submit" else [])))
    if case == "text":
        data[draw(st.sampled_from(["prompt", "completion"]))] = draw(bad_text)
    elif case == "missing":
        del data[draw(st.sampled_from(["prompt", "completion"]))]
    elif case == "tool":
        tool = draw(st.sampled_from(["substitutions", "insertions", "saliency", "", "edit_map\x00", "EDIT_MAP"]))
        data.update(tool=tool, index=draw(st.one_of(odd_numbers, st.integers(1000, 2**70).map(str))))
    elif case == "unticked":
        del data["injurious"]
    elif case == "utf8":
        fields = {k: v.encode() for k, v in data.items()}
        fields[draw(st.sampled_from(["prompt", "completion"]))] = draw(invalid_utf8)
        return Req("contractor", SESSION + route, raw_form(fields, draw(st.booleans())), FORM, headers=headers)
    elif case == "unknown":
        session = draw(st.sampled_from(["{other_session}", str(draw(st.uuids()))]))
        route = draw(st.sampled_from([route, "leave"]))
        return Req("contractor", f"/attack/session/{session}/{route}", data, headers=headers, statuses=(404,))
    elif case == "key":
        key = draw(st.sampled_from(BAD_KEYS))
        if draw(st.booleans()):
            return Req("contractor", SESSION + route, data, headers=(*headers, ("HTTP_IDEMPOTENCY_KEY", key)))
        data["idempotency_key"] = key
    else:
        return oversize_form("contractor", SESSION + route)
    return Req("contractor", SESSION + route, data, headers=headers)


@given(req=attack_page_requests())
@example(req=Req("contractor", SESSION + "suggest", {**GOOD, "tool": "substitutions", "index": "--5"}, headers=HTMX))
@example(req=Req("contractor", SESSION + "suggest", {**GOOD, "tool": "insertions", "index": "²"}, headers=HTMX))
@example(req=Req("contractor", SESSION + "score", {**GOOD, "prompt": "a" * (MAX_TEXT + 1)}, headers=HTMX))
@example(req=Req("contractor", SESSION + "score", {**GOOD, "completion": "he fell\x00"}, headers=HTMX))
@example(req=Req("contractor", SESSION + "submit", {**GOOD, "completion": "he fell\x07 .", "injurious": "on"}))
@example(req=Req("contractor", SESSION + "score", b"prompt=the%20knight%FF&completion=he%20fell", FORM))
@fuzz(40)
def test_the_attack_pages_refuse_bad_input(bad, req):
    check_refused(bad, req)


# -- the filtered generator's page -----------------------------------------------------------------

@st.composite
def talk_requests(draw) -> Req:
    role = draw(st.sampled_from(["anonymous", "contractor", "pm"]))
    headers = draw(st.sampled_from([(), HTMX]))
    case = draw(st.sampled_from(["prompt", "prompt", "utf8", "key", "oversize"]))
    if case == "prompt":
        prompt = draw(st.one_of(with_control, blank, longer_than(MAX_PROMPT)))
        return Req(role, "/talk/", {"prompt": prompt}, headers=headers)
    if case == "utf8":
        return Req(role, "/talk/", raw_form({"prompt": draw(invalid_utf8)}, draw(st.booleans())), FORM)
    if case == "key":
        return Req(role, "/talk/", {"prompt": "once upon a time", "idempotency_key": draw(st.sampled_from(BAD_KEYS))})
    return oversize_form(role, "/talk/")


@given(req=talk_requests())
@example(req=Req("anonymous", "/talk/", {"prompt": "once upon a time\x00"}, headers=HTMX))
@example(req=Req("anonymous", "/talk/", b"prompt=once%20upon%20a%20time%FE", FORM))
@fuzz(15)
def test_the_talk_page_refuses_bad_input(bad, req):
    check_refused(bad, req)


# -- REST API: labelling --------------------------------------------------------------------------

def api(role: str, path: str, body, **kwargs) -> Req:
    return Req(role, path, body, api=True, **kwargs)


@st.composite
def labelling_api_requests(draw) -> Req:
    kind = draw(KINDS)
    answer_path = f"/api/v1/tasks/{{{kind}}}/answer"
    case = draw(st.sampled_from(["answer", "answer", "answer", "body", "key", "unknown", "next"]))
    if case == "answer":
        value = draw(st.one_of(wrong_json, st.integers(1, 10), bad_text, odd_numbers, st.just("\ud800"),
                               st.just("x" * 33)).filter(lambda a: not is_valid_answer(kind, a)))
        return api("contractor", answer_path, {"answer": value})
    if case == "body":
        body = draw(st.one_of(st.just({}), st.just({"Answer": "injurious"}), wrong_json.filter(
            lambda v: not isinstance(v, dict)), st.sampled_from(MALFORMED_JSON),
            invalid_utf8.map(lambda b: b'{"answer": "' + b + b'"}')))
        return api("contractor", answer_path, body)
    if case == "key":
        body = {"answer": {"label": "injurious", "comparison": "first", "rating": "7"}[kind]}
        return api("contractor", answer_path, body, headers=(("HTTP_IDEMPOTENCY_KEY", draw(st.sampled_from(BAD_KEYS))),))
    if case == "unknown":
        task = draw(st.sampled_from(["{other_task}", str(draw(st.uuids()))]))
        path = f"/api/v1/tasks/{task}/" + draw(st.sampled_from(["answer", "skip"]))
        return api("contractor", path, {"answer": "injurious"}, statuses=(404,))
    dataset = draw(st.one_of(st.integers(10**6, 2**70).map(str), st.sampled_from(["-1", "0", "1e3", "x", "%00",
                                                                                 "{dataset}"])))
    kind = draw(st.one_of(KINDS, st.text(min_size=1, max_size=12)) if dataset != "{dataset}" else
                st.text(min_size=1, max_size=12).filter(lambda k: k not in ("label", "comparison", "rating")))
    return api("contractor", f"/api/v1/work/{dataset}/{quote(kind, safe='')}/next", b"", statuses=(400, 404))


@given(req=labelling_api_requests())
@example(req=api("contractor", "/api/v1/tasks/{rating}/answer", {"answer": "²"}))
@example(req=api("contractor", "/api/v1/tasks/{rating}/answer", {"answer": 7}))
@example(req=api("contractor", "/api/v1/tasks/{label}/answer", {"answer": "injurious"},
                 headers=(("HTTP_IDEMPOTENCY_KEY", "key\x00"),)))
@fuzz(45)
def test_the_labelling_api_refuses_bad_input(bad, req):
    check_refused(bad, req)


# -- REST API: models, training, the filtered generator ----------------------------------------------

MODEL_ROUTES = ["score", "saliency", "substitutions", "insertions", "edit-map"]
SNIPPET = {"prompt": "the knight walked home", "completion": "he fell ."}
snippet_values = st.one_of(wrong_json, longer_than(MAX_TEXT), st.just("\ud800 lone"), st.just("ok\x00"), with_control)
TRAINING = {"version": "new-run", "base_model": "tiny-bert", "splits": ["train"], "epochs": 1,
            "learning_rate": 2e-5, "batch_size": 16, "seed": 0, "equal_size": False}
TRAINING_BAD = {
    "version": st.one_of(st.sampled_from(["", "Not A Slug", "a" * 81, "tiny", "tiny-trained", "ver\x00", "é"]),
                         wrong_json),
    "base_model": st.one_of(with_control, st.just("x" * 501), st.just("\ud800"), st.none(), st.lists(st.text()),
                            st.integers(), blank),
    "dataset_ids": st.sampled_from([[], [10**6], [2**70], [-1], ["x"], list(range(1, 102)), "1", None]),
    "splits": st.sampled_from([["bogus"], "train", [None], [["train"]]]),
    "epochs": st.sampled_from([0, 51, 2**70, "NaN", 1.5, None]),
    "learning_rate": st.sampled_from(["NaN", "nan", "Infinity", 0, 1, 2**70, "x", None]),
    "batch_size": st.sampled_from([0, 513, 2**70, -1]),
    "seed": st.sampled_from([2**70, -(2**70), -1, "NaN", 1.5, None, 2**63]),
    "equal_size": st.sampled_from(["maybe", 2, [True]]),
}


@st.composite
def model_api_requests(draw) -> Req:
    case = draw(st.sampled_from(["inference", "inference", "inference", "version", "training", "training", "run",
                                 "filtered", "filtered"]))
    if case == "inference":
        route = draw(st.sampled_from(MODEL_ROUTES))
        path = f"/api/v1/models/{{version}}/{route}"
        if route == "score":
            snippets = draw(st.one_of(
                wrong_json.filter(lambda v: not isinstance(v, list) or v), st.just([]), st.just([SNIPPET] * 257),
                st.builds(lambda f, v: [{**SNIPPET, f: v}], st.sampled_from(["prompt", "completion"]), snippet_values),
                st.sampled_from([[{"prompt": "x"}], [{"completion": "x"}]])))
            body = draw(st.one_of(st.just({"snippets": snippets}), st.just({}), st.sampled_from(MALFORMED_JSON),
                                  invalid_utf8.map(lambda b: b'{"snippets": [{"prompt": "' + b
                                                   + b'", "completion": "x"}]}')))
            return api("pm", path, body)
        body = {**SNIPPET, **({"index": 3, "limit": 5} if route in ("substitutions", "insertions") else {})}
        name = draw(st.sampled_from(sorted(body)))
        if name in ("index", "limit"):
            body[name] = draw(st.one_of(st.integers(10_001, 2**70), st.integers(-(2**70), -1), st.sampled_from(
                ["NaN", "1.5", 1.5, "x", None, [1], True, 10**400 if name == "index" else 101])))
        else:
            body[name] = draw(snippet_values)
        without = {k: v for k, v in body.items() if k != name}  # a missing limit has its default
        return api("pm", path, draw(st.sampled_from([body, body if name == "limit" else without])
                                    | st.sampled_from(MALFORMED_JSON)))
    if case == "version":
        version = draw(st.one_of(st.text(min_size=1, max_size=20).map(lambda v: quote(v, safe="")),
                                 st.sampled_from(["%00", "x%00y", "..", "TINY", "a" * 81])).filter(lambda v: v != "tiny"))
        route = draw(st.sampled_from(MODEL_ROUTES))
        body = {"snippets": [SNIPPET]} if route == "score" else {**SNIPPET, "index": 3}
        return api("pm", f"/api/v1/models/{version}/{route}", body, statuses=(400, 404))
    if case == "training":
        body = {**TRAINING, "dataset_ids": ["{dataset}"]}
        name = draw(st.sampled_from(sorted(TRAINING_BAD)))
        if name in ("version", "base_model", "dataset_ids") and draw(st.booleans()):
            del body[name]
        else:
            body[name] = draw(TRAINING_BAD[name])
        return api("pm", "/api/v1/training-runs", body)
    if case == "run":
        run_id = draw(st.one_of(st.uuids().map(str), st.sampled_from(["%00", "x%00", "..", "a" * 300])))
        if draw(st.booleans()):
            return api("pm", f"/api/v1/training-runs/{run_id}/cancel", b"", statuses=(400, 404))
        return api("pm", f"/api/v1/training-runs/{run_id}", None, method="GET", statuses=(400, 404))
    body = draw(st.one_of(
        st.builds(lambda v: {"prompt": v}, st.one_of(wrong_json, with_control, blank, st.just("\ud800 once"),
                                                     longer_than(MAX_PROMPT))),
        st.builds(lambda s: {"prompt": "once upon a time", "seed": s},
                  st.sampled_from([2**70, 2**62 + 1, -1, "NaN", 1.5, "x", [1], -(2**70)])),
        st.just({}), st.just({"Prompt": "once"}), st.sampled_from(MALFORMED_JSON),
        invalid_utf8.map(lambda b: b'{"prompt": "' + b + b'"}')))
    return api(draw(st.sampled_from(["anonymous", "contractor", "pm"])), "/api/v1/generate/filtered", body)


@given(req=model_api_requests())
@example(req=api("pm", "/api/v1/models/{version}/saliency", {"prompt": "the knight", "completion": 0}))
@example(req=api("pm", "/api/v1/models/%00/score", {"snippets": [SNIPPET]}, statuses=(400, 404)))
@example(req=api("pm", "/api/v1/training-runs/%00/cancel", b"", statuses=(400, 404)))
@example(req=api("pm", "/api/v1/training-runs", {**TRAINING, "dataset_ids": ["{dataset}"], "seed": 2**70}))
@example(req=api("pm", "/api/v1/generate/filtered", {"prompt": "once upon a time\x07"}))
@fuzz(60)
def test_the_model_api_refuses_bad_input(bad, req):
    check_refused(bad, req)


# -- the admin's own forms, and the threshold page ----------------------------------------------------

GOOD_LINE = {"prompt": "the knight walked home", "completion": "he fell off his horse ."}
bad_value = st.one_of(wrong_json, bad_text, st.just("\ud800 lone"), st.just("ok\x00"))
not_a_choice = st.one_of(st.text(min_size=1, max_size=12).filter(
    lambda s: s not in ("initial", "in_distribution_test", "manual_adversarial", "paraphrase", "tool_assisted",
                        "train", "validation", "test")),
    st.integers().filter(bool), st.lists(st.integers(), min_size=1, max_size=2))  # not falsy: falsy is the default


@st.composite
def bad_lines(draw) -> bytes:
    kind = draw(st.sampled_from(["value", "missing", "unknown", "source", "split", "raw"]))
    record = dict(GOOD_LINE, completion=f"he fell off his horse {draw(st.integers(0, 10**6))} .")
    if kind == "value":
        record[draw(st.sampled_from(["prompt", "completion"]))] = draw(bad_value)
    elif kind == "missing":
        del record[draw(st.sampled_from(["prompt", "completion"]))]
    elif kind == "unknown":
        record[draw(st.text(min_size=1, max_size=8).filter(
            lambda k: k not in ("prompt", "completion", "source", "split")))] = "x"
    elif kind in ("source", "split"):
        record[kind] = draw(not_a_choice)
    else:
        return draw(st.sampled_from([b"{not json", b"[1, 2]", b'"text"', b"42", b'{"prompt": NaN}', b"null"])
                    | invalid_utf8.map(lambda b: b'{"prompt": "' + b + b'", "completion": "x"}'))
    return json.dumps(record).encode()


@st.composite
def import_requests(draw) -> Req:
    """A file with at least one bad line, a bad file, or bad form fields."""
    good = [json.dumps(dict(GOOD_LINE, prompt=f"prompt {i}")).encode() for i in range(draw(st.integers(0, 3)))]
    case = draw(st.sampled_from(["line", "line", "line", "csv", "name", "empty", "form", "dataset"]))
    name, source, split, path = "snippets.jsonl", "initial", "train", "/admin/annotation/dataset/{dataset}/import/"
    statuses = FOUR_XX
    if case == "line":
        good.insert(draw(st.integers(0, len(good))), draw(bad_lines()))
        content = b"\n".join(good)
    elif case == "csv":
        name = "snippets.csv"
        content = draw(st.sampled_from([
            b"prompt\nonly a prompt\n", b"prompt,completion\na,b,c\n", b"prompt,completion\na\x00,b\n",
            b"prompt,completion\n\"a,b\n", b"prompt,completion\na\x07,b\n", b"prompt,completion\n\xff,b\n",
            b"prompt,completion\n" + b"a" * (MAX_TEXT + 1) + b",b\n", b"prompt,completion\n,b\n"]))
    elif case == "name":
        name = draw(st.sampled_from(["snippets.txt", "snippets", "snippets.jsonl.exe", ".csv.x"]))
        content = b"\n".join(good) or json.dumps(GOOD_LINE).encode()
    elif case == "empty":
        content = draw(st.sampled_from([b"", b"\n\n", b"\xef\xbb\xbf", b"prompt,completion\n"]))
        name = "snippets.csv" if content.startswith(b"prompt") else name
    else:
        content = json.dumps(GOOD_LINE).encode()
        if case == "form":
            source, split = draw(st.sampled_from([("bogus", "train"), ("initial", "bogus"), ("", "train"),
                                                  ("initial\x00", "train")]))
        else:
            path = "/admin/annotation/dataset/" + draw(st.sampled_from(["999999", str(2**70)])) + "/import/"
            statuses = (404,)
    return Req("pm", path, {"source": source, "split": split}, files=(("file", name, content),), statuses=statuses)


CAMPAIGN = {"name": "Spring", "kind": "manual", "dataset": "{dataset}", "split": "train", "target_version": "tiny",
            "seed": "0", "threshold": "0.05", "idle_cap_seconds": "600", "time_zone": "Europe/London"}
CAMPAIGN_BAD = {
    "name": st.one_of(st.just(""), st.just("n" * 201), with_control, st.just("beat tiny now")),
    "kind": st.sampled_from(["bogus", "", "MANUAL"]),
    "dataset": st.sampled_from(["999999", str(2**70), "x", "-1", ""]),
    "split": st.sampled_from(["bogus", ""]),
    "target_version": st.sampled_from(["nope", "tiny\x00", "TINY"]),
    "threshold": st.sampled_from(["NaN", "inf", "-inf", str(2**70), "-1", "0", "1", "1e-7", "x"]),
    "idle_cap_seconds": st.sampled_from(["0", "-1", str(2**70), str(2**31), "1.5", "NaN", "x", str(86_400 * 2)]),
    "time_zone": st.sampled_from(["Nowhere/Land", "Europe/Lond\x00", "a" * 300, "../../etc/passwd", "", "Europe",
                                  "zone.tab", "posix/" * 12 + "UTC", "Europe/London" + " " * 60 + "x"]),
}
TRAINING_FORM = {"version": "from-admin", "base_model": "tiny-bert", "datasets": ["{dataset}"], "splits": ["train"],
                 "epochs": "1", "learning_rate": "0.001", "batch_size": "2", "seed": "0"}
TRAINING_FORM_BAD = {
    "version": st.sampled_from(["", "Not A Slug", "a" * 81, "tiny", "ver\x00"]),
    "base_model": st.one_of(with_control, st.just("x" * 501), st.just("")),
    "datasets": st.sampled_from([["999999"], [str(2**70)], ["x"], []]),
    "splits": st.sampled_from([["bogus"], []]),
    "epochs": st.sampled_from(["0", "51", str(2**70), "NaN", "1.5", ""]),
    "learning_rate": st.sampled_from(["NaN", "inf", "0", "1", str(2**70), "x"]),
    "batch_size": st.sampled_from(["0", "513", str(2**70), "-1"]),
    "seed": st.sampled_from([str(2**70), str(2**63), "-1", "NaN", "1.5"]),
}
GENERATION = {"kind": "completions", "per_prompt": "2", "dataset": "{dataset}", "source": "initial",
              "split": "train", "pairs_per_prompt": "4", "threshold": "0.5", "keep_fraction": "0.5",
              "temperature": "1.0", "top_p": "0.95", "max_new_tokens": "48", "seed": "0"}
GENERATION_BAD = {
    "per_prompt": st.sampled_from(["0", "201", str(2**70), "NaN", "x"]),
    "temperature": st.sampled_from(["NaN", "-1", "3", "inf"]),
    "top_p": st.sampled_from(["0", "1.5", "NaN"]),
    "max_new_tokens": st.sampled_from(["0", "513", str(2**70)]),
    "dataset": st.sampled_from(["999999", str(2**70), "x"]),
    "source": st.sampled_from(["bogus", ""]),
    "kind": st.sampled_from(["bogus", ""]),
}
BAD_PROMPT_FILES = [b"", b"{not json", b'{"prompt": ""}', b'{"prompt": 5}', b'{"prompt": "a\\u0000b"}',
                    b'{"prompt": "bell\\u0007"}', b'{"prompt": "lone \\ud800"}', b"[1]",
                    json.dumps({"prompt": "k" * (MAX_TEXT + 1)}).encode()]


def one_field_wrong(draw, good: dict, bad: dict) -> dict:
    name = draw(st.sampled_from(sorted(bad)))
    return {**good, name: draw(bad[name])}


@st.composite
def admin_requests(draw) -> Req:
    case = draw(st.sampled_from(["import", "import", "import", "comparisons", "campaign", "campaign", "experiment",
                                 "switch", "training", "training", "generation", "generation", "threshold",
                                 "paraphrase", "threshold_page"]))
    if case == "import":
        return draw(import_requests())
    if case == "comparisons":
        pairs = draw(st.one_of(st.sampled_from(["3", "101", "0", "-1", "NaN", "", "4.5", "1e1"]),
                               st.integers(101, 2**70).map(str)))
        return Req("pm", "/admin/annotation/dataset/{pairs}/comparisons/", {"pairs_per_prompt": pairs, "seed": "0"})
    if case == "campaign":
        return Req("pm", "/admin/attacks/campaign/add/", one_field_wrong(draw, CAMPAIGN, CAMPAIGN_BAD))
    if case == "experiment":
        seed = draw(st.sampled_from([str(2**70), str(2**63), str(-(2**63) - 1), "-1", "NaN", "1.5"]))
        form = {**CAMPAIGN, "target_version": "", "experiment_classifiers": ["tiny", "tiny-b"], "seed": seed}
        return Req("pm", "/admin/attacks/campaign/add/", form)
    if case == "switch":
        campaign = draw(st.sampled_from(["{campaign}", "not-a-uuid", "00000000-0000-0000-0000-000000000000"]))
        version = draw(st.sampled_from(["nope", "", "tiny\x00", "TINY"]))
        return Req("pm", f"/admin/attacks/campaign/{campaign}/change/", {"version": version}, statuses=(400, 404))
    if case == "training":
        return Req("pm", "/admin/modelserve/trainingrun/start/", one_field_wrong(draw, TRAINING_FORM,
                                                                                 TRAINING_FORM_BAD))
    if case == "generation":
        content, form = b'{"prompt": "once upon a time"}', dict(GENERATION)
        if draw(st.booleans()):
            content = draw(st.sampled_from(BAD_PROMPT_FILES) | invalid_utf8.map(lambda b: b'{"prompt": "' + b + b'"}'))
        else:
            form = one_field_wrong(draw, GENERATION, GENERATION_BAD)
        return Req("pm", "/admin/modelserve/generationjob/add/", form,
                   files=(("prompts_file", "prompts.jsonl", content),))
    if case == "threshold":
        form = {"action": "choose_threshold", "_selected_action": ["tiny"],
                "threshold": draw(st.sampled_from(["NaN", "inf", "0", "1", "-1", str(2**70), "x", ""])),
                "method": draw(st.sampled_from(["set by a PM", "", "m" * 201, "nul\x00"]))}
        return Req("pm", "/admin/modelserve/classifierversion/", form)
    if case == "paraphrase":
        good = {"campaign": "{paraphrase_campaign}", "few_shot_prompt": "Rewrite {prompt} / {completion}",
                "goal": "5", "budget": "60"}
        form = one_field_wrong(draw, good, {
            "goal": st.sampled_from(["4", "11", str(2**70), "NaN", ""]),
            "budget": st.sampled_from(["4", "1001", str(2**70), "NaN"]),
            "few_shot_prompt": st.sampled_from(["", "no fields", "{prompt} only", "{prompt} {completion} {x}",
                                                "{prompt:{x}} {completion}", "{prompt}\x07{completion}",
                                                "{prompt} {completion} " + "k" * MAX_TEXT]),
            "campaign": st.sampled_from(["x", "00000000-0000-0000-0000-000000000000", "", "{campaign}"]),
        })
        return Req("pm", "/admin/attacks/submission/paraphrase/", form)
    good = {"classifier": "tiny", "comparison_dataset": "{pairs}", "lower_bound": "0.48", "level": "0.95"}
    return Req("pm", "/evaluation/thresholds/", one_field_wrong(draw, good, {
        "lower_bound": st.sampled_from(["NaN", "-1", "2", str(2**70), "x", ""]),
        "level": st.sampled_from(["NaN", "0.4", "1", "inf", ""]),
        "classifier": st.sampled_from(["nope", "", "tiny\x00"]),
        "comparison_dataset": st.sampled_from(["999999", str(2**70), "x", ""]),
    }))


IMPORT = "/admin/annotation/dataset/{dataset}/import/"


@given(req=admin_requests())
@example(req=Req("pm", IMPORT, {"source": "initial", "split": "train"},
                 files=(("file", "s.jsonl", json.dumps({**GOOD_LINE, "prompt": "lone \ud800"}).encode()),)))
@example(req=Req("pm", IMPORT, {"source": "initial", "split": "train"},
                 files=(("file", "s.jsonl", json.dumps({**GOOD_LINE, "prompt": "bell \x07"}).encode()),)))
@example(req=Req("pm", "/admin/attacks/campaign/add/", {**CAMPAIGN, "idle_cap_seconds": str(2**70)}))
@example(req=Req("pm", "/admin/attacks/campaign/add/", {**CAMPAIGN, "time_zone": "Europe"}))
@example(req=Req("pm", "/admin/attacks/campaign/not-a-uuid/change/", {"version": "nope"}, statuses=(404,)))
@example(req=Req("pm", "/admin/modelserve/trainingrun/start/", {**TRAINING_FORM, "seed": str(2**70)}))
@example(req=Req("pm", "/admin/modelserve/generationjob/add/", GENERATION,
                 files=(("prompts_file", "prompts.jsonl", b'{"prompt": "a\\u0000b"}'),)))
@fuzz(70)
def test_the_admin_forms_refuse_bad_input(bad, req):
    response = check_refused(bad, req)
    if req.statuses == FOUR_XX and "/admin/" in req.path:
        assert b"errorlist" in response.content or b"errornote" in response.content  # the reason is shown
