"""The engine: text in, ranked candidate prompts out. Pure compute: it never fetches and never writes."""

from __future__ import annotations

import contextlib
import logging
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence

from . import cpu_linear, decoding, hardware, scoring
from .junk import KINDS, degenerate, page_junk
from .prompt_format import SEPARATOR, encode_prefix, encode_prompt, stop_token_ids
from .types import DEFAULT_CONFIGS, DEFAULT_MAX_NEW_TOKENS, DEFAULT_TOP_N, Candidate, DecodeConfig, SweepResult

log = logging.getLogger("revprompt.engine")

DEFAULT_MAX_INPUT_TOKENS = 2048  # the training cap: longer responses are truncated (reported once per run)
# Documents decoded together by sweep_many. Each decoding step reads the weights once for the whole group, so
# s/doc falls with the group: on a 2-core avx512_bf16 CPU, 300-token texts, 16 docs, 1.55 s/doc at 4, 1.46 at
# 8, 1.23 at 16, and no further at 32 (fp32: 2.55 at 4, 2.21 at 16). bench/RESULTS.md, issue 14.
DEFAULT_BATCH_DOCS = 16
# How candidates are ordered: by perplexity (the original method's rule, the default), or the best few of those
# re-ordered by the channel score (core/channel.py, `--rerank channel`).
RERANKS = ("perplexity", "channel")


class InputTruncatedWarning(UserWarning):
    """Raised per text by the library; the CLI folds them into one line per run (`window_note`)."""


# Why the window is what it is, for the one line that tells the user how much of each text was read.
WINDOW_ORIGINS = {
    "trained": "the window the model was trained on",
    "option": "set by --max-input-tokens",
    "default": "the default window",
}


def window_note(window: int | None, origin: str, n_texts: int, n_longer: int, single: bool) -> str | None:
    """The one line saying how much of each text the model read: inputs longer than the window are cut by
    design (a web page always is), so this is information, not a warning per page."""
    if not window or n_texts == 0:
        return None
    why = WINDOW_ORIGINS.get(origin, origin)
    if single:
        if not n_longer:
            return None
        return (
            f"revprompt: note: the text is longer than {window} tokens; its first {window} were read ({why}; "
            "--max-input-tokens to change)"
        )
    return f"revprompt: inputs are read up to {window} tokens ({why}); {n_longer} of {n_texts} texts were longer"


class Engine:
    """Runs the decoding sweep over a response and ranks the distinct candidates by perplexity.

    `method="fast"` (default) is the batched, prefix-shared sweep; `method="reference"` runs each
    configuration separately with the plain decoder: same candidates, far slower.
    """

    def __init__(
        self,
        model,
        tokenizer,
        configs: Sequence[DecodeConfig] = DEFAULT_CONFIGS,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        max_input_tokens: int | None = DEFAULT_MAX_INPUT_TOKENS,
        top_n: int = DEFAULT_TOP_N,
        model_name: str = "custom",
        method: str = "fast",
        batch_docs: int | None = None,
        drop_degenerate: bool = True,
        demote_page_junk: bool = True,
        rerank: str = "perplexity",
        channel_model=None,
        workers: int | None = None,
        half_weights: bool = False,
        page_separator: str | None = None,
        page_engine: Engine | Callable[[], Engine] | None = None,
        page_model_name: str | None = None,
    ):
        self.model = model
        self.tokenizer = tokenizer
        self.configs = list(configs)
        self.max_new_tokens = max_new_tokens
        self.max_input_tokens = max_input_tokens
        self.top_n = top_n
        self.model_name = model_name
        self.method = method
        self.batch_docs = batch_docs or (hardware.gpu_batch_docs() if self.device == "cuda" else DEFAULT_BATCH_DOCS)
        # Template markers and phrases repeated over and over are never the answer, but perplexity likes them.
        self.drop_degenerate = drop_degenerate
        # A candidate naming a URL / code fence / language the text lacks goes last, and on a web page also one
        # copying the page (core/junk.py DEMOTED_REASONS: an assistant's answer often restates its prompt).
        self.demote_page_junk = demote_page_junk
        # "channel": the best few by perplexity re-ordered by how well each predicts the text under the base
        # model (core/channel.py), which `channel_model` is; Engine.load loads it when not given.
        if rerank not in RERANKS:
            raise ValueError(f"rerank must be one of {', '.join(RERANKS)}, not {rerank!r}")
        if rerank == "channel" and channel_model is None:
            raise ValueError("rerank='channel' needs channel_model (the base model; Engine.load loads it)")
        self.rerank = rerank
        self.channel_model = channel_model
        self.window_origin = "default" if max_input_tokens == DEFAULT_MAX_INPUT_TOKENS else "option"
        # What follows a web page (kind 'page') when the model was trained with page-like pairs under their
        # own separator (core/prompt_format.py PAGE_SEPARATOR); None: a page is read like a response.
        self.page_separator = page_separator
        # Web pages go to a second engine when the model ships a page adapter of its own (ModelSpec.page_adapter):
        # an Engine, or a function that loads one the first time a page comes (a run of pasted texts never does).
        self._page_engine = page_engine
        self.page_model_name = page_model_name or (page_engine.model_name if isinstance(page_engine, Engine) else None)
        self.stop_ids = stop_token_ids(tokenizer)
        # A CPU batch runs as `workers` forests side by side, each on its share of the threads: two one-thread
        # sweeps keep two cores busier than one two-thread sweep, whose small per-step products split badly.
        # Only on revprompt's own Gemma 3: transformers' models switch attention through their shared config
        # (core/tree_attention.py), which two forests in flight at once would switch under each other.
        own = getattr(model, "reads_doc_blocks", False)
        self.workers = (workers or hardware.cpu_sweep_workers()) if self.device == "cpu" and own else 1
        # fp16 weights (fbgemm) for those forests, on CPUs without native bf16 (core/cpu_linear.py): packed at the
        # first batch, since packing costs seconds that a single text would not earn back.
        self.half_weights = bool(half_weights) and self.device == "cpu" and self.dtype == "float32"
        # Decoding multiplies a few rows by each weight per step; on a CPU, packed weights do that far faster.
        cpu_linear.pack_linears(model)

    @classmethod
    def load(
        cls,
        model: str | None = None,
        dtype: str = "auto",
        max_input_tokens: int | None = None,
        device: str = "auto",
        **kwargs,
    ) -> Engine:
        """The engine on a named model. Without max_input_tokens, responses are cut to the length the model
        was trained on (recorded with a trained adapter), else to DEFAULT_MAX_INPUT_TOKENS. `auto` dtype and
        device follow the hardware (core/hardware.py); `auto` also turns on fp16 weights for batches where the
        CPU has no native bf16 (`half_weights`; an explicit float32 keeps every step in fp32)."""
        from . import model as model_loader

        hf_model, tokenizer, spec = model_loader.load(model, dtype=dtype, device=device)
        if kwargs.get("rerank") == "channel" and kwargs.get("channel_model") is None:
            # The base model, without any adapter: the score must not come from the model that wrote the
            # candidates. It shares the tokenizer; `dtype` and `device` as the engine's.
            kwargs["channel_model"] = hf_model if spec.name == "base" else model_loader.load("base", dtype, device)[0]
        window = max_input_tokens or spec.trained_response_tokens or DEFAULT_MAX_INPUT_TOKENS
        if (dtype or "auto").lower() == "auto" and "half_weights" not in kwargs:
            # auto on a CPU without native bf16: fp32, and fp16 weights for batches where fbgemm has them.
            param = next(hf_model.parameters())
            kwargs["half_weights"] = hardware.half_weights_pay(
                param.device.type, str(param.dtype).removeprefix("torch.")
            )
        kwargs.setdefault("page_separator", spec.page_separator)
        if spec.page_adapter is not None and "page_engine" not in kwargs:
            # The page adapter's own revprompt.json says how it reads a page (its page_separator).
            page_kwargs = {k: v for k, v in kwargs.items() if k != "page_separator"}
            page_kwargs["page_engine"] = None

            def load_pages() -> Engine:
                # Same settings; the channel re-ranker's base model is shared, not loaded twice.
                page = cls.load(
                    str(spec.page_adapter),
                    dtype=dtype,
                    max_input_tokens=max_input_tokens,
                    device=device,
                    **dict(page_kwargs, channel_model=engine.channel_model),
                )
                page.model_name = f"{spec.name}:page"
                return page

            kwargs["page_engine"] = load_pages
            kwargs["page_model_name"] = f"{spec.name}:page"
        engine = cls(hf_model, tokenizer, model_name=spec.name, max_input_tokens=window, **kwargs)
        engine.window_origin = (
            "option" if max_input_tokens else "trained" if spec.trained_response_tokens else "default"
        )
        return engine

    @property
    def page_engine(self) -> Engine | None:
        """The engine that reads web pages when the model has a page adapter of its own (loaded on first use)."""
        if self._page_engine is not None and not isinstance(self._page_engine, Engine):
            self._page_engine = self._page_engine()
        return self._page_engine

    def for_kind(self, kind: str = "response") -> Engine:
        """The engine that reads texts of this kind: the page engine for a page when there is one, else this."""
        if kind == "page" and self._page_engine is not None:
            return self.page_engine or self
        return self

    @property
    def dtype(self) -> str:
        return str(next(self.model.parameters()).dtype).removeprefix("torch.")

    @property
    def device(self) -> str:
        return next(self.model.parameters()).device.type

    def describe(self) -> dict:
        return {
            "model": self.model_name,
            "configs": [c.label for c in self.configs],
            "beams": next((c.beams for c in self.configs if c.beams), 0),
            "max_new_tokens": self.max_new_tokens,
            "max_input_tokens": self.max_input_tokens,
            "top_n": self.top_n,
            "method": self.method,
            "drop_degenerate": self.drop_degenerate,
            "demote_page_junk": self.demote_page_junk,
            "rerank": self.rerank,
            "dtype": self.dtype,
            "batch_weights": "float16" if self.half_weights else self.dtype,
            "workers": self.workers,
            "device": self.device,
            "page_separator": self.page_separator is not None,
            "page_model": self.page_model_name,
        }

    # -- one text ---------------------------------------------------------------------------------------
    def separator(self, kind: str = "response") -> str:
        """What the model reads between a text of this kind and its prompt (the page engine's, for a page
        when there is one: `for_kind`)."""
        if (other := self.for_kind(kind)) is not self:
            return other.separator(kind)
        return self.page_separator if kind == "page" and self.page_separator else SEPARATOR

    def encode(self, text: str, kind: str = "response"):
        # Room is left for the generated prompt inside the window.
        prefix = encode_prefix(self.tokenizer, text, self.max_input_tokens, self.separator(kind))
        if prefix.truncated:
            warnings.warn(
                f"input is longer than the model window; only its first {self.max_input_tokens} tokens are read "
                "(--max-input-tokens to change)",
                InputTruncatedWarning,
                stacklevel=3,
            )
        return prefix

    def sweep(self, text: str, kind: str = "response") -> SweepResult:
        """The ranked candidates for one text. `kind` is what the text is: 'response' (an assistant's answer)
        or 'page' (a web page); it decides which junk goes last (core/junk.py DEMOTED_REASONS), and which
        engine reads it (`for_kind`)."""
        if (other := self.for_kind(kind)) is not self:
            return other.sweep(text, kind)
        start = time.perf_counter()
        prefix = self.encode(text, kind)
        configs = self.configs_for(kind)
        if self.method == "reference":
            sequences, known_scores = self._reference_sequences(prefix.ids, configs), None
        else:
            from .sweep import fast_sweep

            out = fast_sweep(
                self.model, prefix.ids, configs, self.max_new_tokens, self.stop_ids, self.tokenizer.eos_token_id
            )
            sequences, known_scores = out.sequences, out.scores
        candidates, dropped, demoted = self._rank(prefix.ids, sequences, known_scores, page=text, kind=kind)
        return SweepResult(candidates, len(prefix.ids), prefix.truncated, time.perf_counter() - start, dropped, demoted)

    def sweep_many(
        self, texts: Iterable[str], batch_docs: int | None = None, kinds: Sequence[str] | None = None
    ) -> Iterator[tuple[int, SweepResult]]:
        """Sweep many texts, yielding (index, result) in order as each batch finishes. `kinds[i]` is text i's
        kind (see `sweep`); all 'response' when not given.

        The fast method decodes `batch_docs` documents together, so every forward reads the weights once for
        all of them (the cost of a CPU decoding step is mostly that weight traffic).
        """
        batch_docs = batch_docs or self.batch_docs

        def kind_of(i: int) -> str:
            return kinds[i] if kinds is not None else "response"

        if self.method == "reference" or batch_docs <= 1:
            for i, text in enumerate(texts):
                yield i, self.sweep(text, kind_of(i))
            return

        pending: list[tuple[int, str]] = []

        def run(chunk):
            pages = [item for item in chunk if kind_of(item[0]) == "page"] if self._page_engine is not None else []
            if not pages:
                yield from self._sweep_chunk(chunk, kind_of)
                return
            # A batch with pages and a page engine: each engine sweeps its own texts, results in batch order.
            others = [item for item in chunk if kind_of(item[0]) != "page"]
            results = dict(self._sweep_chunk(others, kind_of)) if others else {}
            results.update(self.for_kind("page")._sweep_chunk(pages, kind_of))
            for i, _ in chunk:
                yield i, results[i]

        for item in enumerate(texts):
            pending.append(item)
            if len(pending) == batch_docs:
                yield from run(pending)
                pending = []
        if pending:
            yield from run(pending)

    def configs_for(self, kind: str = "response") -> list[DecodeConfig]:
        """The sweep for a text of this kind: a web page gets no beam search. On the 160 web pages of the
        yardstick the beams' likelier prompts moved top-1 away from the page's title (−0.032 ± 0.010 cosine,
        docs/model.md §26), where on assistants' responses they move it toward the true prompt."""
        contrastive = [c for c in self.configs if not c.beams]
        return contrastive if kind == "page" and contrastive else self.configs

    def _sweep_chunk(self, chunk: list[tuple[int, str]], kind_of) -> Iterator[tuple[int, SweepResult]]:
        """One batch of (index, text) through this engine's model, decoded together (pages apart from responses
        when their sweeps differ: `configs_for`)."""
        groups: dict[tuple, list[int]] = {}
        for j, (i, _) in enumerate(chunk):
            groups.setdefault(tuple(self.configs_for(kind_of(i))), []).append(j)
        if len(groups) > 1:
            results: dict[int, SweepResult] = {}
            for part in groups.values():
                results.update(self._sweep_chunk([chunk[j] for j in part], kind_of))
            for i, _ in chunk:
                yield i, results[i]
            return
        configs = list(next(iter(groups)))
        start = time.perf_counter()
        encoded = [self.encode(text, kind_of(i)) for i, text in chunk]
        outs = self._sweep_forests([e.ids for e in encoded], configs)
        share = (time.perf_counter() - start) / len(chunk)  # the batch's wall time, split evenly
        for (i, text), enc, out in zip(chunk, encoded, outs):
            ranked = time.perf_counter()  # plus this text's own ranking (a channel re-rank runs here)
            candidates, dropped, demoted = self._rank(enc.ids, out.sequences, out.scores, page=text, kind=kind_of(i))
            seconds = share + time.perf_counter() - ranked
            yield i, SweepResult(candidates, len(enc.ids), enc.truncated, seconds, dropped, demoted)

    def _sweep_forests(self, prefixes: list[list[int]], configs: Sequence[DecodeConfig] | None = None) -> list:
        """The fast sweep of a batch: one forest, or on a CPU `workers` forests side by side in threads, each on
        its share of the cores (and on fp16 weights where `half_weights`). Same outputs as one forest."""
        from .sweep import fast_sweep_many

        args = (list(configs or self.configs), self.max_new_tokens, self.stop_ids, self.tokenizer.eos_token_id)
        workers = min(self.workers, len(prefixes))
        if workers <= 1 or self.device != "cpu":
            return fast_sweep_many(self.model, prefixes, *args)
        import torch

        from .threads import DaemonPool

        if self.half_weights and not getattr(self, "_half_packed", False):
            cpu_linear.pack_half(self.model)
            self._half_packed = True
        threads = torch.get_num_threads()
        per_worker = max(1, threads // workers)

        def forest(part: list[int]) -> list:
            with cpu_linear.half_weights() if self.half_weights else contextlib.nullcontext():
                return fast_sweep_many(self.model, [prefixes[i] for i in part], *args)

        parts = [list(range(w, len(prefixes), workers)) for w in range(workers)]
        pool = DaemonPool(workers, "revprompt-sweep")
        torch.set_num_threads(per_worker)  # the intra-op pool is the process's: each forest gets its share
        try:
            futures = [pool.submit(forest, part) for part in parts]
            outs: list = [None] * len(prefixes)
            for part, future in zip(parts, futures):
                for i, out in zip(part, future.result()):
                    outs[i] = out
        finally:
            pool.shutdown()
            torch.set_num_threads(threads)
        return outs

    def score(self, text: str, prompts: Sequence[str], kind: str = "response") -> list[Candidate]:
        """Perplexity of given prompts for a response (pair consistency, evaluation) or, with kind 'page', a page."""
        if (other := self.for_kind(kind)) is not self:
            return other.score(text, prompts, kind)
        prefix = self.encode(text, kind)
        conts = [encode_prompt(self.tokenizer, p, self.max_new_tokens) for p in prompts]
        scores = scoring.score_continuations(self.model, prefix.ids, conts)
        return [self._candidate(s, []) for s in scores]

    # -- internals --------------------------------------------------------------------------------------
    def _reference_sequences(
        self, prefix_ids: list[int], configs: Sequence[DecodeConfig] | None = None
    ) -> dict[tuple[int, ...], list[DecodeConfig]]:
        sequences: dict[tuple[int, ...], list[DecodeConfig]] = {}
        for config in configs or self.configs:
            if config.beams:
                for ids in decoding.beam_search(
                    self.model,
                    prefix_ids,
                    config.beams,
                    config.top_k,
                    self.max_new_tokens,
                    self.stop_ids,
                    self.tokenizer.eos_token_id,
                ):
                    sequences.setdefault(tuple(ids), []).append(config)
                continue
            ids = decoding.contrastive_search(
                self.model, prefix_ids, config.top_k, config.penalty_alpha, self.max_new_tokens, self.stop_ids
            )
            sequences.setdefault(tuple(ids), []).append(config)
        return sequences

    def _rank(
        self,
        prefix_ids: list[int],
        sequences: dict[tuple[int, ...], list[DecodeConfig]],
        known_scores: dict | None = None,
        page: str | None = None,
        kind: str = "page",
    ) -> tuple[list[Candidate], int, int]:
        """Score each distinct sequence (closing EOS included) and keep the best `top_n`; return them with the
        number dropped as degenerate and the number ranked last as junk for `page`.

        The fast sweep hands in the scores it read off its own decoding; the reference scores teacher-forced.
        """
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
        keyed: list[tuple] = []
        junk: list[tuple] = []
        for ids, configs in sequences.items():
            body = [t for t in ids if t not in self.stop_ids]
            text = self.tokenizer.decode(body, skip_special_tokens=True).strip()
            if not text:
                continue  # an empty prompt is no candidate
            (junk if self.drop_degenerate and degenerate(text) else keyed).append(
                (body + [self.tokenizer.eos_token_id], configs)
            )
        if not keyed:  # every candidate is degenerate: show them rather than nothing
            keyed, junk = junk, []
        # Sequences that differ only in their stop token score the same way: merge them.
        merged: dict[tuple[int, ...], list[DecodeConfig]] = {}
        for ids, configs in keyed:
            merged.setdefault(tuple(ids), []).extend(configs)
        order = list(merged)
        known_scores = known_scores or {}
        missing = [k for k in order if k not in known_scores]
        fresh = dict(zip(missing, scoring.score_continuations(self.model, prefix_ids, [list(k) for k in missing])))
        scores = [known_scores.get(k) or fresh[k] for k in order]
        candidates = [self._candidate(s, merged[k]) for k, s in zip(order, scores)]
        flagged: set[int] = set()
        if self.demote_page_junk and page:
            flagged = {id(c) for c in candidates if page_junk(c.prompt, page, kind)}
        candidates.sort(key=lambda c: (id(c) in flagged, c.perplexity, c.prompt))
        if self.rerank == "channel" and page:
            from . import channel

            candidates = channel.rerank(candidates, self.channel_model, self.tokenizer, page, keep_last=flagged)
        candidates = candidates[: self.top_n]
        for rank, cand in enumerate(candidates, start=1):
            cand.rank = rank
        demoted = sum(id(c) in flagged for c in candidates)
        return candidates, len({tuple(ids) for ids, _ in junk}), demoted

    def _candidate(self, score: scoring.PromptScore, configs: list[DecodeConfig]) -> Candidate:
        body = [t for t in score.token_ids]
        tokens = [self.tokenizer.decode([t]) for t in body]
        prompt_ids = [t for t in body if t not in self.stop_ids]
        return Candidate(
            prompt=self.tokenizer.decode(prompt_ids, skip_special_tokens=True).strip(),
            token_ids=body,
            tokens=tokens,
            token_probs=score.token_probs,
            perplexity=score.perplexity,
            mean_nll=score.mean_nll,
            configs=sorted(configs, key=lambda c: (c.beams, c.top_k, c.penalty_alpha)),
        )
