"""Text generation: continuations of a prompt, from a local causal LM, an HTTP endpoint, or a
replay of completions already stored for the prompt.

Pure Python / PyTorch / transformers: knows nothing of Django. `modelserve.interface.generator()`
picks the configured one. All answer the same way: `n` continuations of the prompt (the new
text only), each cut at the first stop string and stripped of surrounding whitespace.
"""

import http.client
import json
import random
import re
import secrets
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from threading import Lock
from typing import Protocol, runtime_checkable

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, StoppingCriteria, StoppingCriteriaList

from modelserve.inference import pick_device


class GenerationError(Exception):
    """A generator could not answer (bad folder, HTTP error, bad reply)."""


@runtime_checkable
class Generator(Protocol):
    name: str  # for logs and the admin: "local:<folder>" or "http:<model>@<host>", never a key

    def generate(
        self,
        prompt: str,
        *,
        n: int = 1,
        max_new_tokens: int = 96,
        temperature: float = 1.0,
        top_p: float = 0.95,
        seed: int | None = None,
        stop: list[str] | None = None,
    ) -> list[str]: ...


def finish(text: str, stop: list[str] | None) -> str:
    """Cut at the earliest stop string (wherever it starts), then strip."""
    cuts = [text.find(s) for s in stop or [] if s]
    cuts = [c for c in cuts if c >= 0]
    return (text[: min(cuts)] if cuts else text).strip()


def draw(writer: "Generator", prompt: str, *, n: int, **options) -> list[str]:
    """Exactly `n` texts from any generator, or a GenerationError: whatever a backend raises
    (a local model's own refusal, out of memory, a bad reply) becomes one error the jobs record,
    so that a job fails with its reason and can be resumed instead of staying "running"."""
    try:
        texts = writer.generate(prompt, n=n, **options)
    except GenerationError:
        raise
    except Exception as exc:
        raise GenerationError(f"{getattr(writer, 'name', 'the generator')}: {exc!r}") from exc
    if not isinstance(texts, list) or len(texts) != n or not all(isinstance(t, str) for t in texts):
        count = len(texts) if isinstance(texts, list) else type(texts).__name__
        raise GenerationError(f"asked for {n} texts, the generator answered {count}")
    return texts


_SENTENCE_END = re.compile(r"""[.!?…]+["'”’)\]]*(?=\s|$)""")


def first_sentence(text: str) -> str:
    """The text up to the end of its first sentence (a completion is one sentence)."""
    match = _SENTENCE_END.search(text)
    return (text[: match.end()] if match else text).strip()


class Replay:
    """Samples, for a prompt, from completions already stored for it: no model at all.

    What the demo and simulated evaluations use where no generator model is available; shown
    as "replay" wherever a generator is named. The same seed gives the same draws.
    """

    name = "replay"

    def __init__(self, lookup: Callable[[str], list[str]]) -> None:
        self.lookup = lookup

    def generate(
        self,
        prompt: str,
        *,
        n: int = 1,
        max_new_tokens: int = 96,
        temperature: float = 1.0,
        top_p: float = 0.95,
        seed: int | None = None,
        stop: list[str] | None = None,
    ) -> list[str]:
        if n < 1:
            raise ValueError("n must be positive")
        stored = sorted(set(self.lookup(prompt.strip())))
        if not stored:
            raise GenerationError("replay: no completion is stored for this prompt")
        rng = random.Random(secrets.randbits(63) if seed is None else seed)
        return [finish(rng.choice(stored), stop) for _ in range(n)]


class _StopStrings(StoppingCriteria):
    """Ends each sequence once its new text contains a stop string, so that no compute is spent
    past it (the text is cut exactly afterwards, by `finish`)."""

    def __init__(self, tokenizer, prompt_length: int, stop: list[str]) -> None:
        self.tokenizer = tokenizer
        self.prompt_length = prompt_length
        self.stop = stop

    def __call__(self, input_ids: torch.Tensor, scores, **kwargs) -> torch.Tensor:
        texts = self.tokenizer.batch_decode(input_ids[:, self.prompt_length :], skip_special_tokens=True)
        return torch.tensor([any(s in text for s in self.stop) for text in texts], device=input_ids.device)


class LocalCausalLM:
    """A Hugging Face causal LM checkpoint folder, sampled in-process (nothing is downloaded).

    Nucleus sampling (the given top-p, no top-k, the given temperature; 0 means greedy). A seed
    fixes the outputs: sampling runs under a forked RNG seeded with it (a fresh random seed
    when none is given), so the process's global RNG is never disturbed, and a lock keeps
    concurrent calls from sharing that RNG. Prompts longer than `max_prompt_tokens` (or than
    the model's context leaves room for) lose their beginning: the end is what gets continued.
    """

    def __init__(self, folder, *, device: torch.device | None = None, max_prompt_tokens: int = 1024) -> None:
        self.name = self.name_for(folder)
        self.device = device or pick_device()
        if self.device.type == "cuda" and self.device.index is None:
            self.device = torch.device("cuda", torch.cuda.current_device())
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
            model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True)
        except (OSError, ValueError, KeyError) as exc:
            raise GenerationError(f"{folder} is not a causal language model checkpoint: {exc}") from None
        self.model = model.to(self.device).eval()
        for parameter in self.model.parameters():
            parameter.requires_grad_(False)
        self.max_prompt_tokens = max_prompt_tokens
        self.context = getattr(self.model.config, "max_position_embeddings", None)
        self._lock = Lock()

    @staticmethod
    def name_for(folder) -> str:
        return f"local:{folder}"

    def _prompt_ids(self, prompt: str, max_new_tokens: int) -> list[int]:
        limit = self.max_prompt_tokens
        if self.context:
            if max_new_tokens >= self.context:
                raise ValueError(f"max_new_tokens must be below the model's context of {self.context} tokens")
            limit = min(limit, self.context - max_new_tokens)
        ids = self.tokenizer(prompt)["input_ids"][-limit:]
        if not ids:
            raise ValueError("the prompt is empty")
        return ids

    def generate(
        self,
        prompt: str,
        *,
        n: int = 1,
        max_new_tokens: int = 96,
        temperature: float = 1.0,
        top_p: float = 0.95,
        seed: int | None = None,
        stop: list[str] | None = None,
    ) -> list[str]:
        if n < 1 or max_new_tokens < 1:
            raise ValueError("n and max_new_tokens must be positive")
        ids = self._prompt_ids(prompt, max_new_tokens)
        input_ids = torch.tensor([ids], device=self.device)
        tokenizer = self.tokenizer
        pad = next((t for t in (tokenizer.pad_token_id, tokenizer.eos_token_id) if t is not None), 0)
        greedy = temperature <= 0
        sampling = (
            dict(do_sample=False, temperature=None, top_p=None, top_k=None) if greedy
            else dict(do_sample=True, temperature=temperature, top_p=top_p, top_k=0)
        )
        stopping = StoppingCriteriaList([_StopStrings(tokenizer, len(ids), [s for s in stop if s])] if stop else [])
        seed = secrets.randbits(63) if seed is None else seed
        devices = [self.device.index] if self.device.type == "cuda" else []
        with self._lock, torch.random.fork_rng(devices=devices), torch.inference_mode():
            torch.random.default_generator.manual_seed(seed)
            if devices:
                torch.cuda.default_generators[self.device.index].manual_seed(seed)
            output = self.model.generate(
                input_ids=input_ids,
                attention_mask=torch.ones_like(input_ids),
                max_new_tokens=max_new_tokens,
                num_return_sequences=1 if greedy else n,
                pad_token_id=pad,
                stopping_criteria=stopping,
                **sampling,
            )
        rows = [self._until_eos(row) for row in output[:, len(ids) :].tolist()]
        texts = [finish(text, stop) for text in tokenizer.batch_decode(rows, skip_special_tokens=True)]
        return texts * n if greedy else texts  # greedy decoding has one answer

    def _until_eos(self, row: list[int]) -> list[int]:
        """A sequence's tokens before its end-of-sequence token (what follows is padding,
        whatever token the tokenizer or the model uses for it)."""
        eos = self.model.generation_config.eos_token_id
        eos = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        return next((row[:i] for i, token in enumerate(row) if token in eos), row)


class OpenAICompatible:
    """An OpenAI-compatible `/completions` endpoint (vLLM, llama.cpp server, OpenAI).

    `base_url` includes the API prefix, e.g. `http://gpu-host:8000/v1`. The API key never
    appears in `name` or in an error message (a server that echoes it is redacted too).
    """

    def __init__(self, base_url: str, *, api_key: str = "", model: str, timeout: float = 60.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.model = model
        self.timeout = timeout
        parts = urllib.parse.urlsplit(self.base_url)
        host = parts.hostname or self.base_url
        self.name = f"http:{model}@{host}" + (f":{parts.port}" if parts.port else "")

    def _fail(self, message: str) -> GenerationError:
        if self.api_key:
            message = message.replace(self.api_key, "***")
        return GenerationError(f"{self.name}: {message}")

    def _post(self, body: dict) -> dict:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(
            f"{self.base_url}/completions", data=json.dumps(body).encode(), headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            detail = _detail(exc.read().decode(errors="replace"))
            raise self._fail(f"the server answered {exc.code} {exc.reason}: {detail}") from None
        except urllib.error.URLError as exc:
            raise self._fail(f"could not reach {self.base_url}: {exc.reason}") from None
        except (OSError, http.client.HTTPException) as exc:  # timeouts and dropped connections
            raise self._fail(f"no answer from {self.base_url}: {exc!r}") from None
        try:
            return json.loads(raw)
        except ValueError:
            raise self._fail(f"the reply is not JSON: {raw[:200]!r}") from None

    def generate(
        self,
        prompt: str,
        *,
        n: int = 1,
        max_new_tokens: int = 96,
        temperature: float = 1.0,
        top_p: float = 0.95,
        seed: int | None = None,
        stop: list[str] | None = None,
    ) -> list[str]:
        body = {"model": self.model, "prompt": prompt, "n": n, "max_tokens": max_new_tokens,
                "temperature": temperature, "top_p": top_p}
        if seed is not None:
            body["seed"] = seed
        if stop:
            body["stop"] = stop
        reply = self._post(body)
        try:
            choices = sorted(reply["choices"], key=lambda choice: choice.get("index", 0))
            texts = [choice["text"] for choice in choices]
        except (KeyError, TypeError, AttributeError):
            raise self._fail(f"the reply has no list of choices with text: {str(reply)[:200]}") from None
        if len(texts) != n or not all(isinstance(text, str) for text in texts):
            raise self._fail(f"asked for {n} texts, the reply has {len(texts)}")
        return [finish(text, stop) for text in texts]


def _detail(body: str) -> str:
    """The error message of an OpenAI-style (`error.message`), vLLM (`message`) or FastAPI
    (`detail`) error body; else the body's beginning."""
    try:
        reply = json.loads(body)
    except ValueError:
        return body[:500]
    if isinstance(reply, dict):
        error = reply.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        for value in (error, reply.get("message"), reply.get("detail")):
            if value:
                return str(value)
    return body[:500]
