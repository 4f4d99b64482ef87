"""The fine-tune format, shared by training and inference: `{response}\\n###\\n{prompt}<eos>`.

Response, separator and prompt are tokenized separately so the separator's tokens never depend on the text
around it: training and inference then see exactly the same ids.
"""

from __future__ import annotations

from dataclasses import dataclass

SEPARATOR = "\n###\n"
# A web page's own separator, for adapters trained with page-like pairs (`revprompt datagen doc-pages`): told
# which of the two it reads, one model can answer a page with a topic request and a chat response with a chat
# prompt, instead of letting one style bleed into the other (docs/model.md §17). Only an adapter whose
# revprompt.json names it gets it; older adapters read pages with SEPARATOR, as they were trained.
PAGE_SEPARATOR = "\n### page\n"


@dataclass
class EncodedPrefix:
    ids: list[int]  # [bos] + response (possibly truncated) + separator
    n_response_tokens: int
    truncated: bool


def encode_prefix(
    tokenizer, response: str, max_response_tokens: int | None = None, separator: str = SEPARATOR
) -> EncodedPrefix:
    response_ids = tokenizer(response, add_special_tokens=False)["input_ids"]
    truncated = max_response_tokens is not None and len(response_ids) > max_response_tokens
    if truncated:
        response_ids = response_ids[:max_response_tokens]
    sep_ids = tokenizer(separator, add_special_tokens=False)["input_ids"]
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
