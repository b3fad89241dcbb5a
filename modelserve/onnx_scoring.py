"""Scoring on a CPU through ONNX Runtime: the classifier's forward pass, exported once per load.

For one snippet of about 100 tokens on a CPU, ONNX Runtime with its transformer fusions runs
MiniLM's forward about twice as fast as PyTorch eager (BENCHMARKS.md): attention, embeddings,
layer normalisation and GELU become single fused operators. Only the forward pass of scoring
goes through it, in float32 like the model (scores agree with PyTorch's to about 1e-7);
gradients (saliency, first-order candidates) stay in PyTorch. The export holds its own copy of the weights, taken when it is built: a model
trained further afterwards needs a new `Classifier`.

Pure PyTorch / ONNX Runtime: knows nothing of Django.
"""

import logging
import tempfile
import warnings
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import torch

logger = logging.getLogger(__name__)

_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
# Architectures whose traced graph is checked against PyTorch at every length and padding
# (tests/modelserve/test_onnx_scoring.py), and to which onnxruntime.transformers' "bert"
# fusions apply. Others (DeBERTa's relative positions are sizes turned into constants by
# tracing) are scored in PyTorch.
SUPPORTED_MODEL_TYPES = {"bert"}


class OnnxScorer:
    """The logits of padded batches, as `model(input_ids, attention_mask, token_type_ids)`."""

    def __init__(self, model: torch.nn.Module, *, threads: int) -> None:
        import onnxruntime

        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "classifier.onnx"
            example = torch.ones((1, 8), dtype=torch.long)
            with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings(), _eager_attention(model):
                warnings.simplefilter("ignore")  # the tracer's notes on Python values it records
                torch.onnx.export(
                    model,
                    (example, torch.ones_like(example), torch.zeros_like(example)),
                    str(path),
                    input_names=list(_INPUTS),
                    output_names=["logits"],
                    dynamic_axes={name: {0: "batch", 1: "tokens"} for name in _INPUTS},
                    opset_version=17,
                    dynamo=False,
                )
            path = _fused(path, model.config)
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            # Spinning threads would take the CPU from the web process's other work.
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            self._session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self._inputs = {spec.name for spec in self._session.get_inputs()}  # unused ones are pruned

    def logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor):
        feeds = dict(zip(_INPUTS, (input_ids, attention_mask, token_type_ids), strict=True))
        [logits] = self._session.run(["logits"], {k: v.numpy() for k, v in feeds.items() if k in self._inputs})
        return torch.from_numpy(logits)


@contextmanager
def _eager_attention(model):
    """Traced from the plain attention code: the graph of PyTorch's fused attention (SDPA) is
    not one that ONNX Runtime's attention fusion recognises."""
    previous = model.config._attn_implementation
    model.set_attn_implementation("eager")
    try:
        yield
    finally:
        model.set_attn_implementation(previous)


def _fused(path: Path, config) -> Path:
    from onnxruntime.transformers import optimizer

    _quiet_optimizer_logs(Path(optimizer.__file__).parent)
    fused = optimizer.optimize_model(
        str(path), model_type="bert", num_heads=config.num_attention_heads, hidden_size=config.hidden_size
    )
    target = path.with_name("classifier-fused.onnx")
    fused.save_model_to_file(str(target))
    return target


@cache
def _quiet_optimizer_logs(package: Path) -> None:
    """The optimiser reports every fusion at INFO, on loggers named after its modules alone
    (it imports them as top-level modules): keep those to warnings."""
    for module in package.glob("*.py"):
        logging.getLogger(module.stem).setLevel(logging.WARNING)


def build(model: torch.nn.Module, *, threads: int) -> OnnxScorer | None:
    """An ONNX Runtime scorer for this model, or None (scoring then stays in PyTorch)."""
    if model.config.model_type not in SUPPORTED_MODEL_TYPES:
        return None
    try:
        return OnnxScorer(model, threads=threads)
    except Exception:  # an architecture the exporter cannot trace, a model too large for one file
        logger.warning("scoring stays in PyTorch: the model could not be run by ONNX Runtime", exc_info=True)
        return None
