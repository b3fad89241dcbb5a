"""Reading snippet files (JSONL or CSV) into validated rows, naming every bad line.

Each row has `prompt` and `completion`, and optionally `source` and `split` (defaults given
by the caller). A file with any bad line is refused whole: `read_snippet_file` returns the
rows only when the error list is empty.
"""

import csv
import io
import json

from annotation.events import MAX_TEXT
from annotation.models import Source, Split
from annotation.services import SnippetInput
from config.text import text_problem

MAX_FILE_BYTES = 200 * 1024 * 1024


class _Refused(ValueError):
    pass


def _records(data: bytes, filename: str, csv_columns: tuple[str, ...]):
    """(line, record or error message) of a JSONL or CSV file; _Refused for the whole file."""
    if len(data) > MAX_FILE_BYTES:
        raise _Refused(f"the file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _Refused(f"line {data[: exc.start].count(10) + 1}: not valid UTF-8") from None
    if filename.lower().endswith(".csv"):
        return _csv_records(text, csv_columns)
    if filename.lower().endswith((".jsonl", ".ndjson", ".json")):
        return _jsonl_records(text)
    raise _Refused("the file name must end in .jsonl or .csv")


def read_snippet_file(
    data: bytes, *, filename: str, default_source: str, default_split: str = Split.TRAIN
) -> tuple[list[SnippetInput], list[str]]:
    try:
        records = _records(data, filename, ("prompt", "completion"))
    except _Refused as exc:
        return [], [str(exc)]
    rows, errors = [], []
    for line, record in records:
        if isinstance(record, str):
            errors.append(f"line {line}: {record}")
            continue
        row, problems = _validate(record, line, default_source, default_split)
        if problems:
            errors.extend(f"line {line}: {problem}" for problem in problems)
        else:
            rows.append(row)
    if not rows and not errors:
        errors.append("the file holds no snippets")
    return (rows if not errors else []), errors


def read_prompt_file(data: bytes, *, filename: str) -> tuple[list[str], list[str]]:
    """Prompts for generation jobs: JSONL objects or CSV rows with a `prompt` field."""
    try:
        records = _records(data, filename, ("prompt",))
    except _Refused as exc:
        return [], [str(exc)]
    prompts, errors = [], []
    for line, record in records:
        value = record.get("prompt") if isinstance(record, dict) else None
        if isinstance(record, str):
            errors.append(f"line {line}: {record}")
        elif not isinstance(value, str) or not value.strip():
            errors.append(f"line {line}: prompt is missing or empty")
        elif problem := text_problem(value, max_length=MAX_TEXT):
            errors.append(f"line {line}: prompt {problem}")
        else:
            prompts.append(value.strip())
    if not prompts and not errors:
        errors.append("the file holds no prompts")
    return (prompts if not errors else []), errors


def _jsonl_records(text: str):
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as exc:
            yield number, f"not valid JSON ({exc.msg})"
            continue
        yield number, record if isinstance(record, dict) else "each line must be a JSON object"


def _csv_records(text: str, required: tuple[str, ...]):
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if not reader.fieldnames or not set(required) <= set(reader.fieldnames):
        yield 1, f"the header must name the column(s) {' and '.join(required)}"
        return
    try:
        for record in reader:
            if None in record:
                yield reader.line_num, "more fields than the header names"
                continue
            yield reader.line_num, record
    except csv.Error as exc:
        yield reader.line_num, f"not valid CSV ({exc})"


def _validate(record: dict, line: int, default_source: str, default_split: str):
    problems = []
    values = {}
    for field in ("prompt", "completion"):
        value = record.get(field)
        if not isinstance(value, str) or not value.strip():
            problems.append(f"{field} is missing or empty")
        elif problem := text_problem(value, max_length=MAX_TEXT):
            problems.append(f"{field} {problem}")
        else:
            values[field] = value.strip()
    source = record.get("source") or default_source
    split = record.get("split") or default_split
    if source not in Source.values:
        problems.append(f"source {source!r} is not one of {', '.join(Source.values)}")
    if split not in Split.values:
        problems.append(f"split {split!r} is not one of {', '.join(Split.values)}")
    unknown = set(record) - {"prompt", "completion", "source", "split"}
    if unknown:
        problems.append(f"unknown field(s): {', '.join(sorted(map(str, unknown)))}")
    if problems:
        return None, problems
    return SnippetInput(values["prompt"], values["completion"], source, split, line), []
