"""Plain data types that flow between sources, the engine, analyzers and the store."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime


@dataclass(frozen=True)
class DecodeConfig:
    """One configuration of the sweep: contrastive search (top_k, penalty_alpha), or with `beams` > 0 a beam
    search of that width, which reads each beam's top_k next tokens and keeps every hypothesis it finishes
    until it has twice `beams` of them (core/decoding.py beam_search)."""

    top_k: int
    penalty_alpha: float
    beams: int = 0

    @property
    def label(self) -> str:
        return f"beam={self.beams}" if self.beams else f"k={self.top_k},a={self.penalty_alpha:g}"

    def as_dict(self) -> dict:
        """What the store and the JSON output keep of a configuration."""
        out: dict = {"top_k": self.top_k, "penalty_alpha": self.penalty_alpha}
        if self.beams:
            out["beams"] = self.beams
        return out


def config_label(configs_json, top_k=None, penalty_alpha=None) -> str:
    """`k=4,a=0.3` (or `beam=4`) for a stored candidate's first decoding configuration, `+N` for the others that
    gave the same prompt; from the store's JSON list, else from its top_k / penalty_alpha columns."""
    try:
        configs = json.loads(configs_json) if configs_json else []
    except (TypeError, ValueError):
        configs = []
    if not configs and top_k is not None:
        configs = [{"top_k": top_k, "penalty_alpha": penalty_alpha}]
    if not configs:
        return "-"
    first = configs[0]
    alpha = first.get("penalty_alpha")
    if first.get("beams"):
        label = f"beam={first['beams']}"
    else:
        label = f"k={first.get('top_k')}" + (f",a={alpha:g}" if isinstance(alpha, (int, float)) else "")
    return label + (f" +{len(configs) - 1}" if len(configs) > 1 else "")


DEFAULT_MAX_NEW_TOKENS = 48  # the longest prompt the decoder writes
DEFAULT_TOP_N = 10  # ranked candidates kept per text

# The original work's 24 configurations: top_k 2/4/6/15 x penalty_alpha 0.1..0.6.
DEFAULT_SWEEP: tuple[DecodeConfig, ...] = tuple(
    DecodeConfig(k, a) for k in (2, 4, 6, 15) for a in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6)
)
# Beside them, a beam search: contrastive search's degeneration penalty steers away from the sequences the model
# itself finds most likely, and perplexity ranking then often prefers a prompt no configuration wrote (on dev600,
# the shipped chat model rated another adapter's candidate above all of its own on many responses). Four beams,
# each reading its 8 most probable next tokens, until 8 hypotheses are finished (docs/model.md §26).
DEFAULT_BEAMS = 4


def sweep_configs(beams: int = DEFAULT_BEAMS) -> tuple[DecodeConfig, ...]:
    """The 24 contrastive configurations and, unless `beams` is 0, a beam search of that width (each beam reading
    its 2 x width most probable next tokens): what `--beams` chooses."""
    if beams < 0:
        raise ValueError(f"beams must be 0 or more, not {beams}")
    return (*DEFAULT_SWEEP, DecodeConfig(top_k=2 * beams, penalty_alpha=0.0, beams=beams)) if beams else DEFAULT_SWEEP


DEFAULT_CONFIGS: tuple[DecodeConfig, ...] = sweep_configs()
DEFAULT_BEAM = DEFAULT_CONFIGS[-1]


@dataclass
class Candidate:
    """A reconstructed prompt with its score and per-token confidence."""

    prompt: str
    token_ids: list[int]
    tokens: list[str]
    # Probability of each prompt token (and the closing EOS, last) given response + separator + earlier tokens.
    token_probs: list[float]
    perplexity: float
    mean_nll: float
    # Every sweep configuration that produced this exact token sequence; the first is the "decoding config".
    configs: list[DecodeConfig] = field(default_factory=list)
    rank: int = 0
    candidate_id: int | None = None  # set by the store once saved
    # Mean log-probability of the text's opening after this prompt under the base model: set only with
    # `--rerank channel` (core/channel.py), for the candidates it re-ordered.
    channel: float | None = None

    @property
    def top_k(self) -> int | None:
        return self.configs[0].top_k if self.configs else None

    @property
    def penalty_alpha(self) -> float | None:
        return self.configs[0].penalty_alpha if self.configs else None

    @property
    def confidence(self) -> float:
        """Geometric-mean token probability, 1/perplexity: 0..1, higher is surer."""
        return 1.0 / self.perplexity if self.perplexity > 0 else 0.0


@dataclass
class SweepResult:
    """What the engine returns for one text: ranked candidates plus facts about the input."""

    candidates: list[Candidate]
    n_input_tokens: int
    truncated: bool
    seconds: float = 0.0
    dropped: int = 0  # distinct candidates dropped as degenerate (template markers, repeats) before ranking
    demoted: int = 0  # candidates ranked last because they are junk for this page (core/junk.py page_junk)


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


# Sources whose text is taken as an assistant's response rather than a web page (Document.kind).
RESPONSE_SOURCES = ("text", "stdin")


@dataclass
class Document:
    """One analysed target. Sources produce it; the store keeps it whatever happened to it.

    status: 'done' (analysed), 'failed' (fetch or analysis error; `error` says why), 'duplicate' (the same
    page as another document of the run, stored unanalysed: `meta["duplicate_of"]` names that document's uri;
    the batch marks a text it already analysed, a source a page whose canonical is another page), or
    'pending' (loaded, not analysed yet).
    """

    uri: str
    text: str = ""
    title: str | None = None
    description: str | None = None
    source: str = "text"
    status: str = "pending"
    error: str | None = None
    fetched_at: datetime | None = None
    http_status: int | None = None
    content_type: str | None = None
    meta: dict = field(default_factory=dict)

    @property
    def kind(self) -> str:
        """'response' for text an assistant may have written (pasted, standard input, a .txt or .md file) and
        'page' for a web page (fetched, crawled, DataForSEO, an .html file): the engine ranks a candidate that
        copies the text last only on a page (core/junk.py DEMOTED_REASONS). `meta["kind"]` overrides it
        (`revprompt analyze --kind`)."""
        forced = self.meta.get("kind")
        if forced in ("response", "page"):
            return forced
        if self.source in RESPONSE_SOURCES:
            return "response"
        if self.source == "file":
            return "page" if self.uri.lower().endswith((".html", ".htm", ".xhtml")) else "response"
        return "page"

    def failed(self, error: str) -> Document:
        self.status = "failed"
        self.error = error
        return self
