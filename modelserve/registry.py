"""Registry commands: register a checkpoint, promote it, retire it. Each appends an event."""

import re
from pathlib import Path

from eventlog.store import NO_STREAM, NewEvent, append
from modelserve.errors import BadCheckpoint, ModelserveError, UnknownModel
from modelserve.events import (
    VERSION_PATTERN,
    ClassifierPromoted,
    ClassifierRegistered,
    ClassifierRetired,
    ThresholdChosen,
    classifier_stream,
)
from modelserve.models import ClassifierVersion
from modelserve.selectors import ready_classifier


def register_checkpoint(
    *,
    version: str,
    checkpoint_dir: str,
    base_model: str,
    hyperparameters: dict | None = None,
    metrics: dict | None = None,
    training_run: str | None = None,
    manifest_hash: str | None = None,
    manifest_size: int | None = None,
) -> ClassifierVersion:
    """Register a ready checkpoint folder (Hugging Face format, with its trained single-score
    head) under a new version name. A folder without a trained head is refused: every load
    would make up a new random head, and recorded scores could not be reproduced."""
    check_version_name(version)
    from transformers import AutoConfig  # on use: importing transformers is slow

    from modelserve.inference import load_trained

    folder = Path(checkpoint_dir)
    try:
        AutoConfig.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise BadCheckpoint(f"{checkpoint_dir} is not a Hugging Face checkpoint folder: {exc}") from None
    load_trained(folder)
    payload = ClassifierRegistered(
        version=version,
        base_model=str(base_model),
        checkpoint_dir=str(folder.resolve()),
        status="ready",
        training_run=training_run,
        manifest_hash=manifest_hash,
        manifest_size=manifest_size,
        hyperparameters=hyperparameters or {},
        metrics=metrics or {},
    )
    append([NewEvent(classifier_stream(version), payload)], expected={classifier_stream(version): NO_STREAM})
    return ClassifierVersion.objects.get(version=version)


def check_version_name(version: str) -> None:
    if not re.fullmatch(VERSION_PATTERN, version):
        raise ModelserveError("a version name is lowercase letters, digits, '.', '_' and '-' (up to 80)")


def _existing(version: str) -> ClassifierVersion:
    found = ClassifierVersion.objects.filter(version=version).first()
    if found is None:
        raise UnknownModel(version)
    return found


def promote(*, version: str) -> None:
    """Make a ready classifier the default for new work."""
    ready_classifier(version)
    append([NewEvent(classifier_stream(version), ClassifierPromoted())])


def retire(*, version: str, reason: str = "") -> None:
    if _existing(version).status == ClassifierVersion.Status.RETIRED:
        return
    append([NewEvent(classifier_stream(version), ClassifierRetired(reason=reason))])


def choose_threshold(*, version: str, threshold: float, method: str) -> None:
    """The threshold the filtered generator uses with this classifier (a later choice wins)."""
    _existing(version)
    if not 0 < threshold < 1:
        raise ModelserveError("a threshold is between 0 and 1")
    append([NewEvent(classifier_stream(version), ThresholdChosen(threshold=threshold, method=method))])
