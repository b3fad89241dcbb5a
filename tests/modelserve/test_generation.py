"""Text generation: a tiny causal LM saved to a folder, and a real local HTTP server."""

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch
from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

from modelserve import interface
from modelserve.generation import GenerationError, Generator, OpenAICompatible, finish
from modelserve.local_lm import LocalCausalLM

PROMPT = "the knight walked to the castle with his sword ."
CPU = torch.device("cpu")


def save_lm(folder, tokenizer, *, parrot: str | None = None):
    """A random two-layer GPT-2 over the test vocabulary, saved with its tokenizer. A parrot
    says one word forever: its final norm's output is constant and only that word's row of
    the (untied) output layer is non-zero."""
    torch.manual_seed(3)
    config = GPT2Config(vocab_size=len(tokenizer), n_layer=2, n_embd=32, n_head=2, n_positions=64,
                        bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id,
                        tie_word_embeddings=parrot is None)
    model = GPT2LMHeadModel(config)
    if parrot is not None:
        with torch.no_grad():
            model.transformer.ln_f.weight.zero_()
            model.transformer.ln_f.bias.fill_(1.0)
            model.lm_head.weight.zero_()
            model.lm_head.weight[tokenizer.convert_tokens_to_ids(parrot)] = 1.0
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def lm_folder(tokenizer, tmp_path_factory):
    return save_lm(tmp_path_factory.mktemp("generator") / "lm", tokenizer)


@pytest.fixture(scope="module")
def lm(lm_folder):
    return LocalCausalLM(lm_folder, device=CPU)


@pytest.fixture(scope="module")
def parrot(tokenizer, tmp_path_factory):
    return LocalCausalLM(save_lm(tmp_path_factory.mktemp("generator") / "parrot", tokenizer, parrot="horse"),
                         device=CPU)


# -- a local causal LM ------------------------------------------------------------------


def test_the_saved_folder_holds_the_test_tokenizer(lm_folder, tokenizer):
    loaded = AutoTokenizer.from_pretrained(lm_folder, local_files_only=True)
    assert loaded.get_vocab() == tokenizer.get_vocab()
    assert loaded(PROMPT)["input_ids"] == tokenizer(PROMPT)["input_ids"]


def test_n_continuations_of_new_text_only(parrot):
    assert isinstance(parrot, Generator)
    assert parrot.name.startswith("local:") and parrot.name.endswith("parrot")
    assert parrot.generate(PROMPT, n=3, max_new_tokens=4, seed=1) == ["horse horse horse horse"] * 3


def test_stop_strings_cut_at_the_earliest(parrot):
    assert parrot.generate(PROMPT, max_new_tokens=4, stop=[" horse"]) == ["horse"]
    assert parrot.generate(PROMPT, max_new_tokens=4, stop=["sword", "e h", "se ho"]) == ["hor"]
    assert parrot.generate(PROMPT, max_new_tokens=4, stop=["sword"]) == ["horse horse horse horse"]


def test_greedy_at_temperature_zero(parrot):
    assert parrot.generate(PROMPT, n=2, max_new_tokens=2, temperature=0) == ["horse horse"] * 2


def test_the_same_seed_gives_the_same_texts_and_another_seed_others(lm, lm_folder):
    first = lm.generate(PROMPT, n=4, max_new_tokens=12, seed=5)
    assert len(first) == 4 and len(set(first)) > 1
    assert lm.generate(PROMPT, n=4, max_new_tokens=12, seed=5) == first
    assert LocalCausalLM(lm_folder, device=CPU).generate(PROMPT, n=4, max_new_tokens=12, seed=5) == first
    assert lm.generate(PROMPT, n=4, max_new_tokens=12, seed=6) != first
    assert lm.generate(PROMPT, n=4, max_new_tokens=12) != lm.generate(PROMPT, n=4, max_new_tokens=12)


def test_a_stop_string_cuts_what_the_same_seed_would_have_said(lm):
    whole = lm.generate(PROMPT, n=3, max_new_tokens=12, seed=8)
    words = whole[0].split()
    assert len(words) >= 3, whole
    stop = words[2]
    cut = lm.generate(PROMPT, n=3, max_new_tokens=12, seed=8, stop=[stop])
    assert cut == [finish(text, [stop]) for text in whole]
    assert cut[0] == whole[0][: whole[0].index(stop)].strip()


def test_the_global_rng_is_left_alone(lm):
    state = torch.get_rng_state()
    lm.generate(PROMPT, n=2, max_new_tokens=4, seed=1)
    lm.generate(PROMPT, n=2, max_new_tokens=4)
    assert torch.equal(torch.get_rng_state(), state)


def test_long_prompts_lose_their_beginning(lm_folder):
    short = LocalCausalLM(lm_folder, device=CPU, max_prompt_tokens=12)
    tail = "he fell and broke his arm on the road ."
    one, other = "the dog ran home . " * 5 + tail, "a girl slept in the forest . " * 5 + tail
    assert short.generate(one, n=3, max_new_tokens=8, seed=2) == short.generate(other, n=3, max_new_tokens=8, seed=2)
    full = LocalCausalLM(lm_folder, device=CPU)
    assert full.generate(one, n=3, max_new_tokens=8, seed=2) != full.generate(other, n=3, max_new_tokens=8, seed=2)
    # Longer than the model's 64 positions: truncated to leave room for the new tokens.
    assert len(full.generate("the dog ran home . " * 40, max_new_tokens=16, seed=2)) == 1


def test_no_weight_gradients(lm):
    lm.generate(PROMPT, max_new_tokens=4, seed=1)
    assert all(not p.requires_grad and p.grad is None for p in lm.model.parameters())


def test_a_tokenizer_without_a_pad_token(tokenizer, tmp_path):
    folder = save_lm(tmp_path / "lm", tokenizer)
    unpadded = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    unpadded.pad_token = None
    unpadded.save_pretrained(folder)
    generator = LocalCausalLM(folder, device=CPU)
    assert generator.tokenizer.pad_token_id is None
    texts = generator.generate(PROMPT, n=3, max_new_tokens=6, seed=4)
    assert len(texts) == 3 and not any("[PAD]" in text for text in texts)


def test_a_folder_that_is_not_a_causal_lm_is_refused(tokenizer, tmp_path):
    with pytest.raises(GenerationError, match="not a causal language model"):
        LocalCausalLM(tmp_path, device=CPU)
    with pytest.raises(GenerationError):
        LocalCausalLM(tmp_path / "missing", device=CPU)
    tokenizer.save_pretrained(tmp_path / "tokenizer-only")
    with pytest.raises(GenerationError):
        LocalCausalLM(tmp_path / "tokenizer-only", device=CPU)


# -- an OpenAI-compatible endpoint --------------------------------------------------------


class Endpoint:
    """A real HTTP server on a free port: answers `reply` (status, body) after `delay`
    seconds and records every request."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.reply: tuple[int, bytes] = (200, b"{}")
        self.delay = 0.0
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                endpoint.requests.append({"path": self.path, "headers": dict(self.headers), "body": json.loads(body)})
                time.sleep(endpoint.delay)
                status, content = endpoint.reply
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass  # a client that timed out and left

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def answer(self, status: int, body) -> None:
        self.reply = (status, body if isinstance(body, bytes) else json.dumps(body).encode())

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def endpoint():
    server = Endpoint()
    yield server
    server.close()


KEY = "sk-very-secret-key"


def test_a_request_as_specified_and_choices_in_index_order(endpoint):
    endpoint.answer(200, {"choices": [{"index": 1, "text": " second. STOP more"}, {"index": 0, "text": "  first \n"}]})
    remote = OpenAICompatible(endpoint.url + "/", api_key=KEY, model="tiny-llm")
    assert isinstance(remote, Generator)
    assert remote.name == f"http:tiny-llm@127.0.0.1:{endpoint.server.server_port}"
    texts = remote.generate("Once upon", n=2, max_new_tokens=7, temperature=0.5, seed=9, stop=["STOP"])
    assert texts == ["first", "second."]
    (request,) = endpoint.requests
    assert request["path"] == "/v1/completions"
    assert request["headers"]["Authorization"] == f"Bearer {KEY}"
    assert request["headers"]["Content-Type"] == "application/json"
    assert request["body"] == {"model": "tiny-llm", "prompt": "Once upon", "n": 2, "max_tokens": 7,
                               "temperature": 0.5, "top_p": 0.95, "seed": 9, "stop": ["STOP"]}


def test_no_key_no_seed_no_stop_are_left_out(endpoint):
    endpoint.answer(200, {"choices": [{"index": 0, "text": "and then"}]})
    assert OpenAICompatible(endpoint.url, model="m").generate("Once", stop=[]) == ["and then"]
    (request,) = endpoint.requests
    assert "Authorization" not in request["headers"]
    assert request["body"] == {"model": "m", "prompt": "Once", "n": 1, "max_tokens": 96, "temperature": 1.0,
                               "top_p": 0.95}


@pytest.mark.parametrize("status, body, detail", [
    (401, {"error": {"message": f"Incorrect API key provided: {KEY}", "type": "invalid_request_error"}},
     "Incorrect API key provided"),
    (400, {"object": "error", "message": "max_tokens is too large", "code": 400}, "max_tokens is too large"),
    (404, {"detail": "Not Found"}, "Not Found"),
    (503, b"upstream overloaded", "upstream overloaded"),
])
def test_an_error_answer_names_status_and_detail_but_never_the_key(endpoint, status, body, detail):
    endpoint.answer(status, body)
    with pytest.raises(GenerationError) as error:
        OpenAICompatible(endpoint.url, api_key=KEY, model="m").generate("Once")
    assert str(status) in str(error.value) and detail in str(error.value)
    assert KEY not in str(error.value)


@pytest.mark.parametrize("body", [
    b"<html>not json</html>",
    {"choices": [{"index": 0}]},
    {"object": "text_completion"},
    {"choices": [{"index": 0, "text": "only one"}]},
])
def test_a_malformed_reply_is_a_generation_error(endpoint, body):
    endpoint.answer(200, body)
    with pytest.raises(GenerationError):
        OpenAICompatible(endpoint.url, api_key=KEY, model="m").generate("Once", n=2)


def test_a_timeout_is_a_generation_error(endpoint):
    endpoint.delay = 0.5
    endpoint.answer(200, {"choices": [{"index": 0, "text": "late"}]})
    with pytest.raises(GenerationError) as error:
        OpenAICompatible(endpoint.url, api_key=KEY, model="m", timeout=0.1).generate("Once")
    assert KEY not in str(error.value)


def test_an_unreachable_server_is_a_generation_error():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(GenerationError, match="could not reach"):
        OpenAICompatible(f"http://127.0.0.1:{port}/v1", api_key=KEY, model="m", timeout=2).generate("Once")


# -- generator() from the settings ------------------------------------------------------


@pytest.fixture
def fresh_generator(monkeypatch, settings):
    monkeypatch.setattr(interface, "_local_generator", None)
    settings.GENERATOR_DIR, settings.GENERATOR_URL = None, ""
    settings.GENERATOR_API_KEY, settings.GENERATOR_MODEL = "", ""
    return settings


def test_no_generator_configured(fresh_generator):
    with pytest.raises(GenerationError, match="no generator is configured: set GENERATOR_URL, GENERATOR_DIR or GENERATOR_REPLAY"):
        interface.generator()


def test_a_local_generator_is_loaded_once(fresh_generator, lm_folder, tmp_path, tokenizer):
    fresh_generator.GENERATOR_DIR = str(lm_folder)
    local = interface.generator()
    assert isinstance(local, LocalCausalLM) and local.name == f"local:{lm_folder}"
    assert interface.generator() is local
    fresh_generator.GENERATOR_DIR = str(save_lm(tmp_path / "other", tokenizer))
    assert interface.generator().name == f"local:{tmp_path / 'other'}"


def test_a_url_wins_over_a_folder(fresh_generator, lm_folder, endpoint):
    fresh_generator.GENERATOR_DIR = str(lm_folder)
    fresh_generator.GENERATOR_URL, fresh_generator.GENERATOR_API_KEY = endpoint.url, KEY
    fresh_generator.GENERATOR_MODEL = "served-model"
    endpoint.answer(200, {"choices": [{"index": 0, "text": " a paraphrase "}]})
    remote = interface.generator()
    assert isinstance(remote, OpenAICompatible) and KEY not in remote.name
    assert remote.generate("Paraphrase: the knight fell.") == ["a paraphrase"]
    (request,) = endpoint.requests
    assert request["headers"]["Authorization"] == f"Bearer {KEY}"
    assert request["body"]["model"] == "served-model"
