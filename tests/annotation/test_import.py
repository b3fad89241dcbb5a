"""Importing snippet files: all or nothing, every bad line named, duplicates by content."""

import json

import pytest
from django.core.management import CommandError, call_command

from annotation.importing import read_snippet_file
from annotation.models import Snippet
from eventlog.models import Event

pytestmark = pytest.mark.django_db


def jsonl(*records):
    return "\n".join(json.dumps(r) for r in records).encode()


def test_good_jsonl_and_csv_files_are_read(dataset):
    rows, errors = read_snippet_file(
        jsonl({"prompt": "A", "completion": "B.", "split": "test"}), filename="x.jsonl", default_source="initial"
    )
    assert errors == [] and (rows[0].prompt, rows[0].split, rows[0].source) == ("A", "test", "initial")

    rows, errors = read_snippet_file(
        b'prompt,completion,source\n"He ran, fast",She fell.,manual_adversarial\n',
        filename="x.csv",
        default_source="initial",
    )
    assert errors == [] and (rows[0].prompt, rows[0].source) == ("He ran, fast", "manual_adversarial")


def test_a_bad_file_is_refused_whole_with_every_bad_line_named(dataset, tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(
        b"\n".join(
            [
                json.dumps({"prompt": "ok", "completion": "fine."}).encode(),
                b"{not json",
                json.dumps({"prompt": "", "completion": "x"}).encode(),
                json.dumps({"prompt": "p", "completion": "c", "split": "dev", "colour": 1}).encode(),
                b"[1, 2]",
            ]
        )
    )
    with pytest.raises(CommandError) as caught:
        call_command("import_snippets", dataset.name, str(path))
    message = str(caught.value)
    for expected in ("line 2: not valid JSON", "line 3: prompt is missing", "line 4: split 'dev'",
                     "line 4: unknown field(s): colour", "line 5: each line must be a JSON object"):
        assert expected in message
    assert "line 1" not in message
    assert Snippet.objects.count() == 0 and Event.objects.count() == 0


def test_invalid_utf8_and_csv_without_header_are_refused(dataset):
    assert read_snippet_file(b'{"prompt": "a"}\n\xff\xfe', filename="x.jsonl", default_source="initial")[1] == [
        "line 2: not valid UTF-8"
    ]
    assert "header must name" in read_snippet_file(b"a,b\n1,2\n", filename="x.csv", default_source="initial")[1][0]
    assert "must end in" in read_snippet_file(b"x", filename="x.txt", default_source="initial")[1][0]


def test_duplicates_by_content_are_skipped_and_reported(dataset, tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_bytes(jsonl({"prompt": "A", "completion": "B."}, {"prompt": " A ", "completion": "B. "},
                           {"prompt": "A", "completion": "C."}))
    out = __import__("io").StringIO()
    call_command("import_snippets", dataset.name, str(path), stdout=out)
    assert "imported 2 snippets" in out.getvalue() and "1 duplicates skipped" in out.getvalue()
    call_command("import_snippets", dataset.name, str(path), stdout=out)
    assert Snippet.objects.count() == 2
    [_, second] = Event.objects.filter(type="annotation.import_completed").order_by("position")
    assert second.payload["added"] == 0 and second.payload["duplicate_lines"] == [1, 2, 3]


def test_unknown_dataset_is_a_clear_error(tmp_path):
    with pytest.raises(CommandError, match="no dataset named"):
        call_command("import_snippets", "nope", str(tmp_path / "x.jsonl"))
