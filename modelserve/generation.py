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
from typing import Protocol, runtime_checkable

from modelserve.errors import ModelserveError


class GenerationError(ModelserveError):
    """A generator could not answer (bad folder, HTTP error, bad reply)."""

    status_code = 503


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


def local_name(folder) -> str:
    """The name of the local causal LM in `folder` (what `LocalCausalLM(folder).name` is)."""
    return f"local:{folder}"

