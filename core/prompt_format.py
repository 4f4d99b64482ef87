"""The fine-tune format, shared by training and inference: `{response}\\n###\\n{prompt}<eos>`.

Response, separator and prompt are tokenized separately so the separator's tokens never depend on the text
around it: training and inference then see exactly the same ids.
"""

from __future__ import annotations

from dataclasses import dataclass

SEPARATOR = "\n###\n"


@dataclass
class EncodedPrefix:
    ids: list[int]  # [bos] + response (possibly truncated) + separator
    n_response_tokens: int
    truncated: bool


def encode_prefix(tokenizer, response: str, max_response_tokens: int | None = None) -> EncodedPrefix:
    response_ids = tokenizer(response, add_special_tokens=False)["input_ids"]
    truncated = max_response_tokens is not None and len(response_ids) > max_response_tokens
    if truncated:
        response_ids = response_ids[:max_response_tokens]
    sep_ids = tokenizer(SEPARATOR, add_special_tokens=False)["input_ids"]
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    return EncodedPrefix(bos + response_ids + sep_ids, len(response_ids), truncated)


def encode_prompt(tokenizer, prompt: str, max_prompt_tokens: int | None = None) -> list[int]:
    """Prompt ids followed by EOS (the model learns where a prompt ends)."""
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    if max_prompt_tokens is not None:
        ids = ids[:max_prompt_tokens]
    return ids + [tokenizer.eos_token_id]


def stop_token_ids(tokenizer) -> set[int]:
    ids = {tokenizer.eos_token_id}
    # Gemma's chat end marker also ends a prompt if a model emits it.
    end_of_turn = tokenizer.convert_tokens_to_ids("<end_of_turn>")
    if isinstance(end_of_turn, int) and end_of_turn != tokenizer.unk_token_id:
        ids.add(end_of_turn)
    return {i for i in ids if i is not None}
