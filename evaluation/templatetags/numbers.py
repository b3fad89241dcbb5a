"""Numbers on the evaluation pages: a few significant figures (JSON and CSV keep full precision)."""

import math

from django import template

register = template.Library()


@register.filter
def sig(value, figures: int = 4) -> str:
    """``0.07156128852755445`` -> ``0.07156``; None -> an em dash; infinity -> ``∞``."""
    if value is None or value == "":
        return "—"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isinf(number):
        return "∞" if number > 0 else "-∞"
    if math.isnan(number):
        return "—"
    return f"{number:.{int(figures)}g}"


@register.filter
def percent(value, figures: int = 3) -> str:
    """``0.0512`` -> ``5.12 %``."""
    if value is None or value == "":
        return "—"
    return f"{100 * float(value):.{int(figures)}g} %"


@register.inclusion_tag("evaluation/interval.html")
def interval(values: dict | None, figures: int = 3):
    """An estimate with its interval, "0.512 [0.48, 0.544]"; an em dash when there is none."""
    return {"values": values or {}, "figures": figures}
