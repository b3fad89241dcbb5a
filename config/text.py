"""The free text the system takes from people (prompts, completions, names): what is refused.

NUL cannot be stored in PostgreSQL text or JSON, a lone surrogate (a JSON escape such as
"\\ud800") cannot be encoded at all, and the other control characters (tab, newline and
carriage return aside) are never typed on purpose and would be shown as nothing. Each caller
turns a problem into its own refusal: an import's bad line, an attack's message, a 400.
"""

import re

_REFUSED = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


def text_problem(value: str, *, max_length: int | None = None) -> str | None:
    """What is wrong with `value` ("is longer than ...", "contains ..."), or None."""
    if max_length is not None and len(value) > max_length:
        return f"is longer than {max_length} characters"
    found = _REFUSED.search(value)
    if found is None:
        return None
    char = found.group()
    if char == "\x00":
        return "contains a NUL character"
    if "\ud800" <= char <= "\udfff":
        return f"contains a lone surrogate (U+{ord(char):04X})"
    return f"contains the control character U+{ord(char):04X}"
