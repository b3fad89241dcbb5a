"""A Hugging Face causal LM folder as a text generator (PyTorch; imported only when used)."""

import secrets
from threading import Lock

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, StoppingCriteria, StoppingCriteriaList

from modelserve.generation import GenerationError, finish, local_name
from modelserve.inference import pick_device


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
        return local_name(folder)

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
