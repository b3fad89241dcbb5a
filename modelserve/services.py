"""Registry commands: register a checkpoint, promote it, retire it. Each appends an event."""

from pathlib import Path

from transformers import AutoConfig

from eventlog.store import NO_STREAM, NewEvent, Stream, append
from modelserve.errors import BadCheckpoint, ModelUnavailable, UnknownModel
from modelserve.events import ClassifierPromoted, ClassifierRegistered, ClassifierRetired
from modelserve.models import ClassifierVersion


def _stream(version: str) -> Stream:
    return Stream("classifier", version)


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
    """Register a ready checkpoint folder (Hugging Face format) under a new version name."""
    folder = Path(checkpoint_dir)
    try:
        AutoConfig.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise BadCheckpoint(f"{checkpoint_dir} is not a Hugging Face checkpoint folder: {exc}") from None
    payload = ClassifierRegistered(
        version=version,
        base_model=base_model,
        checkpoint_dir=str(folder.resolve()),
        status="ready",
        training_run=training_run,
        manifest_hash=manifest_hash,
        manifest_size=manifest_size,
        hyperparameters=hyperparameters or {},
        metrics=metrics or {},
    )
    append([NewEvent(_stream(version), payload)], expected={_stream(version): NO_STREAM})
    return ClassifierVersion.objects.get(version=version)


def _existing(version: str) -> ClassifierVersion:
    found = ClassifierVersion.objects.filter(version=version).first()
    if found is None:
        raise UnknownModel(version)
    return found


def promote(*, version: str) -> None:
    """Make a ready classifier the default for new work."""
    if _existing(version).status != ClassifierVersion.Status.READY:
        raise ModelUnavailable(f"{version} is not ready")
    append([NewEvent(_stream(version), ClassifierPromoted())])


def retire(*, version: str, reason: str = "") -> None:
    if _existing(version).status == ClassifierVersion.Status.RETIRED:
        return
    append([NewEvent(_stream(version), ClassifierRetired(reason=reason))])
