"""`attacks.tool_queried` counts words from version 2; version 1's token positions are kept apart."""

from eventlog.registry import registry


def test_a_version_1_tool_query_keeps_its_token_position_apart_from_the_word_index():
    kind = registry.get("attacks.tool_queried")
    activity = {"session_id": "01a25242-dd85-730a-b268-fffb52bde92f", "campaign_id": "01a25242-dd85-730a-b268-fffb52bde92e",
                "user_id": 3, "day": "2026-12-01", "version": "v1"}
    upcast = kind.upcast({**activity, "tool": "substitutions", "index": 11}, from_version=1)
    payload = kind.validate(upcast)
    assert kind.version == 2
    assert payload.index is None and payload.token_index == 11
    assert kind.validate({**activity, "tool": "insertions", "index": 4}).index == 4
