class EvaluationError(ValueError):
    """A report or a threshold selection that cannot be computed from what was asked (the message says why)."""
