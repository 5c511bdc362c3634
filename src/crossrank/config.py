"""The rerank stage contract: every setting a rerank stage takes, validated in one place.

`RerankConfig` is a frozen pydantic model, so a `Reranker` built from it can cache what it
loaded (the scorer) without the settings drifting underneath it. It serialises to and from
JSON (`model_dump_json` / `model_validate_json`) as long as `scorer` is an endpoint URL or
unset; a Python callable cannot be written to JSON and says so.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    FiniteFloat,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveInt,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)

from crossrank.credentials import url_without_credentials
from crossrank.documents import safe_repr, text_problem
from crossrank.errors import ConfigError

DEFAULT_MODEL = "BAAI/bge-reranker-v2-m3"

Activation = Literal["default", "sigmoid", "none"]
DType = Literal["auto", "float32", "bfloat16", "float16"]
LongDocuments = Literal["truncate", "chunk"]
ChunkPooling = Literal["max", "mean", "first"]
Backend = Literal["auto", "torch", "onnx", "openvino"]
Quantize = Literal["none", "int8"]
OnUnreadable = Literal["raise", "skip", "last"]
# crossrank.models.families.MODEL_FAMILIES (a test keeps the two equal; the config module does
# not import the model code).
ModelFamily = Literal[
    "auto", "sequence-classification", "qwen3-reranker", "bge-reranker-gemma", "mxbai-rerank-v2"
]

COUNT_SETTINGS = (
    "top_k",
    "batch_size",
    "token_budget",
    "max_length",
    "chunk_overlap",
    "max_chunks_per_document",
    "num_threads",
    "cache_size",
    "max_documents",
    "max_document_chars",
    "max_query_chars",
    "max_total_chars",
    "min_results",
    "max_context_tokens",
)

# Which ranked documents reach an LLM's context (crossrank.context): crossrank's extensions
# to the stage contract, applied after `top_k`.
CONTEXT_SETTINGS = ("score_threshold", "min_results", "max_context_tokens", "context_tokenizer")


def check_top_k(value: Any) -> int | None:
    """The one `top_k` rule, for the config, a stage's `top_n` and `rerank(top_k=...)`: a
    positive int or None. `True` is refused, not read as 1."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"top_k must be a positive integer or None, not {safe_repr(value, 50)}")
    return value


_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
_PATH_SEGMENT = re.compile(r"^[^.\s]+$")


class EngineSettings(BaseModel):
    """The scoring engine's settings: every contract setting but the per-call ones.

    One definition, inherited by `RerankConfig` and by both integrations' classes
    (`langchain_crossrank.CrossRankReranker`, `llama_index.postprocessor.crossrank.
    CrossRankRerank`), so that a setting added here reaches every entry point with the same
    type, default, validation and description. The per-call settings (`CALL_SETTINGS`: how
    many to return, the query, where the text and the previous score live) are mapped by each
    entry point in its own framework's terms.

    Scores: with the built-in model scorer, `score` is the cross-encoder's output after
    `activation`. `"default"` applies the model's own activation (for a one-logit reranker
    such as bge-reranker or ms-marco MiniLM this is a sigmoid, so scores lie in (0, 1));
    `"sigmoid"` forces a sigmoid; `"none"` returns raw logits. A custom `scorer` returns the
    final scores itself, so it takes no `activation`.

    Context selection (`CONTEXT_SETTINGS`, crossrank's extensions: `score_threshold`,
    `min_results`, `max_context_tokens`, `context_tokenizer`) applies after `top_k`; see
    `crossrank.context`. They are stage settings, not per-call ones, so they live here and
    reach the integrations, stage JSON and the command line with the rest.
    """

    # No "model_" protected namespace: `model` and later `model_family` are contract names.
    # Inputs are left out of validation errors: a refused scorer URL may hold a password.
    model_config = ConfigDict(protected_namespaces=(), hide_input_in_errors=True)

    model: str = Field(
        default=DEFAULT_MODEL,
        min_length=1,
        description=(
            "Hugging Face cross-encoder name or local folder, or a hosted model such as "
            "cohere-rerank-v3 (scorers/hosted.py)."
        ),
    )
    scorer: Any = Field(
        default=None,
        description=(
            "Custom scorer that overrides `model`: an http(s) URL speaking "
            '{"pairs": [[query, doc], ...]} -> {"scores": [...]} (or a serving engine: '
            "tei+http://..., cohere+http://..., see scorers/registry.py), a registered scorer "
            "name, a callable taking the list of (query, text) pairs, or an object with a "
            "`score(pairs)` method."
        ),
    )
    batch_size: PositiveInt = Field(
        default=32, description="Most pairs per forward pass (the token budget may make it fewer)."
    )
    token_budget: PositiveInt | None = Field(
        default=None,
        description=(
            "Most padded tokens (pairs x longest pair) per forward pass; None picks a default "
            "for the device (4096 on CPU, 32768 on a GPU)."
        ),
    )
    max_length: PositiveInt | None = Field(
        default=None, description="Token limit per pair; None uses the model's own limit."
    )
    device: str = Field(default="auto", description="auto (cuda, then mps, then cpu) or a device.")
    dtype: DType = Field(default="auto", description="auto: float16 on cuda, float32 elsewhere.")
    activation: Activation = Field(default="default", description="See the class docstring.")
    trust_remote_code: bool = Field(
        default=False, description="Allow model repositories to run their own Python code."
    )
    model_family: ModelFamily = Field(
        default="auto",
        description=(
            "How the model reads a pair and yields a score: auto (detected from the model's "
            "class and name), sequence-classification, or a causal-LM reranker's prompt "
            "(qwen3-reranker, bge-reranker-gemma, mxbai-rerank-v2); see README, Models."
        ),
    )
    instruction: str | None = Field(
        default=None,
        min_length=1,
        description=(
            "Task instruction for rerankers that take one (qwen3-reranker, mxbai-rerank-v2; "
            "the prompt of bge-reranker-gemma); None uses the model card's default."
        ),
    )
    allow_pickle_weights: bool = Field(
        default=False,
        description=(
            "Allow loading pickle weights (pytorch_model.bin) when a model has no safetensors; "
            "pickle can run code, so only for models you trust."
        ),
    )
    # Long documents (see crossrank.long_documents).
    long_documents: LongDocuments = Field(
        default="truncate",
        description=(
            "Documents longer than max_length: 'truncate' (cut, counted and reported) or "
            "'chunk' (split into overlapping token windows, score each, pool)."
        ),
    )
    chunk_overlap: NonNegativeInt | None = Field(
        default=None,
        description="Tokens shared by consecutive windows; None: a quarter of the window.",
    )
    chunk_pooling: ChunkPooling = Field(
        default="max", description="How window scores become the document's score."
    )
    max_chunks_per_document: PositiveInt = Field(
        default=8, description="Windows scored per document at most; the rest is truncated."
    )
    tokenizer: str | None = Field(
        default=None,
        min_length=1,
        description=(
            "Hugging Face tokenizer name or folder used to count and split tokens; needed for "
            "long_documents='chunk' with a custom scorer. Default: the model's own tokenizer."
        ),
    )
    scorer_api_key_env: str | None = Field(
        default=None,
        description="Environment variable holding an endpoint scorer's API key "
        "(default CROSSRANK_SCORER_API_KEY, or CO_API_KEY for a hosted Cohere model); the key "
        "itself is never stored or printed.",
    )
    backend: Backend = Field(
        default="auto",
        description=(
            "auto: OpenVINO on CPU when it passes a fidelity self-check at load, else torch "
            "(and torch on a GPU); torch; openvino (CPU); onnx (ONNX Runtime, CPU; needs the "
            "crossrank[onnx] extra)."
        ),
    )
    quantize: Quantize = Field(
        default="none",
        description=(
            "int8: the model is a calibrated int8 OpenVINO folder written by `crossrank "
            "quantize` (it runs int8 with or without this setting; int8 without one is refused)."
        ),
    )
    num_threads: PositiveInt | None = Field(
        default=None,
        description=(
            "CPU threads for the forward pass; None leaves torch / OpenVINO / ONNX Runtime "
            "defaults."
        ),
    )
    cache_size: NonNegativeInt = Field(
        default=0,
        description="Entries in the LRU score cache (query, text) -> score; 0 disables it.",
    )
    microbatch: bool = Field(
        # Off by default: a shared batch pads differently, so scores may differ from a lone
        # call's in the last float bits (about 1e-7); the default is bit-for-bit reproducible.
        default=False,
        description="Coalesce concurrent calls on the same model into shared batches.",
    )
    microbatch_wait_ms: NonNegativeFloat = Field(
        default=2.0,
        description="How long the first of several concurrent calls waits for others to join.",
    )
    on_unreadable: OnUnreadable = Field(
        default="raise",
        description=(
            "A document with no readable text (field missing, not a string, empty or "
            "invisible-only, invalid Unicode): 'raise' a DocumentError naming it (default), "
            "'skip' it (left out of the results, named in one warning per call), or rank it "
            "'last' (after every scored document, input order kept, score -inf, its problem "
            "in RankedDocument.unreadable)."
        ),
    )

    # Input bounds (crossrank.bounds): checked before any text is tokenized or sent, so a
    # call past one fails fast with a DocumentError / QueryError naming the setting. Sized
    # from a practical stage (about 500 candidates of a few thousand characters) with a wide
    # margin; memory within them stays bounded (truncation tokenizes only a prefix).
    max_documents: PositiveInt = Field(
        default=10_000,
        description="Most documents one call may rerank; more is a DocumentError.",
    )
    max_document_chars: PositiveInt = Field(
        default=1_000_000,
        description=(
            "Most characters in one document's text; a longer one is a DocumentError naming it "
            "(raise it to score longer documents: only their first tokens are read)."
        ),
    )
    max_query_chars: PositiveInt = Field(
        default=10_000,
        description="Most characters in the query; a longer one is a QueryError.",
    )
    max_total_chars: PositiveInt = Field(
        default=10_000_000,
        description="Most characters in all of one call's document texts together.",
    )

    # Context selection (see crossrank.context): after top_k, which documents reach the LLM.
    score_threshold: FiniteFloat | None = Field(
        default=None,
        description=(
            "Keep only documents whose score is at least this (inclusive), after top_k; on the "
            "scale `activation` gives (default: a probability for one-logit models; 'none': a "
            "raw logit). None keeps all. As LangChain's FlashrankRerank.score_threshold."
        ),
    )
    min_results: NonNegativeInt = Field(
        default=0,
        description=(
            "A floor under score_threshold: the best N documents (of those top_k kept) are "
            "returned even when they score below it. 0: a threshold may return nothing."
        ),
    )
    max_context_tokens: PositiveInt | None = Field(
        default=None,
        description=(
            "Token budget of the returned documents' texts, counted with context_tokenizer: "
            "documents are kept best first while the sum fits; the first that does not fit "
            "ends the selection (documents are never cut). A hard limit, above min_results."
        ),
    )
    context_tokenizer: str | None = Field(
        default=None,
        min_length=1,
        description=(
            "The LLM's tokenizer, counting max_context_tokens: a tiktoken encoding name "
            "(cl100k_base, o200k_base; needs tiktoken), or a Hugging Face tokenizer name or "
            "folder. Default: the reranker's own tokenizer (the model's, or `tokenizer`)."
        ),
    )

    @field_validator("score_threshold", mode="before")
    @classmethod
    def _refuse_bool_threshold(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError(f"score_threshold must be a number, not {value}")
        return value

    @field_validator("context_tokenizer")
    @classmethod
    def _check_context_tokenizer(cls, value: str | None) -> str | None:
        from crossrank.context import check_tokenizer_name

        return None if value is None else check_tokenizer_name(value)

    @model_validator(mode="after")
    def _check_context(self) -> Any:
        if self.context_tokenizer is not None and self.max_context_tokens is None:
            raise ValueError(
                "context_tokenizer is set but max_context_tokens is not: the tokenizer counts "
                "the token budget, so set max_context_tokens too (or leave context_tokenizer "
                "unset)"
            )
        if self.max_context_tokens is not None and self.context_tokenizer is None:
            from crossrank.scorers.hosted import hosted_model

            if self.scorer is None and hosted_model(self.model) is not None:
                what = f"a hosted model ({self.model})"
            elif self.scorer is not None and self.tokenizer is None:
                what = "a custom scorer"
            else:
                return self
            raise ValueError(
                f"max_context_tokens with {what} needs context_tokenizer (the LLM's "
                "tokenizer: a tiktoken encoding or a Hugging Face tokenizer name or folder) to "
                "count the budget; the scorer has no tokenizer of its own here"
            )
        return self

    @field_validator("scorer")
    @classmethod
    def _check_scorer(cls, value: Any) -> Any:
        if value is None or callable(value) or callable(getattr(value, "score", None)):
            return value
        if isinstance(value, str):  # an endpoint URL or a registered scorer name
            from crossrank.scorers.registry import check_scorer_string

            return check_scorer_string(value)
        raise ValueError(
            f"scorer must be an http(s) URL, a callable or an object with a score(pairs) "
            f"method, not {type(value).__name__}"
        )

    # check_fields=False: `top_k` is RerankConfig's; the rule reaches it by inheritance.
    @field_validator(*COUNT_SETTINGS, mode="before", check_fields=False)
    @classmethod
    def _refuse_bools(cls, value: Any, info: Any) -> Any:
        # pydantic reads True as 1; a count given as a boolean is a mistake, not a 1.
        if isinstance(value, bool):
            raise ValueError(f"{info.field_name} must be a number, not {value}")
        return value

    @field_validator("device")
    @classmethod
    def _check_device(cls, value: str) -> str:
        if not _DEVICE.match(value):
            raise ValueError(f"device {value!r} is not one of auto, cpu, mps, cuda, cuda:N")
        return value

    @field_validator("activation")
    @classmethod
    def _check_activation(cls, value: str, info: Any) -> str:
        if value != "default" and info.data.get("scorer") is not None:
            raise ValueError(
                "activation applies to the built-in model scorer only; a custom scorer "
                "returns final scores, so leave activation at 'default'"
            )
        return value

    @model_validator(mode="after")
    def _check_long_documents(self) -> Any:
        if self.long_documents == "chunk" and self.scorer is not None and self.tokenizer is None:
            raise ValueError(
                "long_documents='chunk' with a custom scorer needs `tokenizer` (a Hugging Face "
                "tokenizer name or folder matching the scorer's model) to split documents into "
                "windows; set max_length too unless the tokenizer declares its limit"
            )
        return self

    @field_validator("instruction")
    @classmethod
    def _check_instruction(cls, value: str | None) -> str | None:
        # The query's rule: the instruction goes into the prompt beside it.
        problem = None if value is None else text_problem(value)
        if problem is not None:
            raise ValueError(
                f"instruction {problem}; leave it unset for the model card's default, or give "
                "the task in words"
            )
        return value

    @model_validator(mode="after")
    def _check_family(self) -> Any:
        if self.scorer is not None and (
            self.model_family != "auto" or self.instruction is not None
        ):
            raise ValueError(
                "model_family and instruction apply to the built-in model scorer only; a "
                "custom scorer formats pairs itself, so leave them unset"
            )
        if self.instruction is not None and self.model_family == "sequence-classification":
            raise ValueError(
                "instruction is set, but model_family='sequence-classification' takes no "
                "instruction (the model reads the query and the document only); leave it unset"
            )
        return self

    @model_validator(mode="after")
    def _check_backend(self) -> Any:
        from crossrank.models.quantized import INT8_REFUSAL, is_quantized_folder

        quantized = self.scorer is None and is_quantized_folder(self.model)
        if quantized and self.backend in ("torch", "onnx"):
            raise ValueError(
                f"model {self.model!r} is an int8 OpenVINO model folder (written by `crossrank "
                f"quantize`); it runs with backend='openvino' or 'auto', not {self.backend!r}"
            )
        if self.quantize == "int8" and not quantized:
            raise ValueError(INT8_REFUSAL)
        if self.backend == "onnx" and self.dtype not in ("auto", "float32"):
            raise ValueError(f"backend='onnx' runs float32, not {self.dtype}")
        if self.backend == "openvino" and self.dtype not in ("auto", "float32", "bfloat16"):
            raise ValueError(
                f"backend='openvino' runs float32 or bfloat16 on CPU, not {self.dtype}"
            )
        cpu_only = quantized or self.backend in ("onnx", "openvino")
        if cpu_only and self.device not in ("auto", "cpu"):
            what = "an int8 OpenVINO model folder" if quantized else f"backend={self.backend!r}"
            raise ValueError(f"{what} runs on CPU, not device={self.device!r}")
        return self

    @model_validator(mode="after")
    def _check_hosted_model(self) -> Any:
        # A hosted model (cohere-rerank-v3) takes no local model settings; see scorers/hosted.py.
        from crossrank.scorers.hosted import check_hosted_settings

        check_hosted_settings(self)
        return self

    @field_serializer("scorer", when_used="json")
    def _serialise_scorer(self, value: Any) -> str | None:
        if value is None or isinstance(value, str):
            return value
        raise TypeError(
            f"this {type(self).__name__} has a Python scorer object, which cannot be "
            "serialised; only an http(s) endpoint URL can be written to JSON"
        )


class RerankConfig(EngineSettings):
    """Settings of one rerank stage (the *stage contract*): `EngineSettings` plus how one call
    reads its documents and how many it returns (see `EngineSettings` for what scores mean)."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    top_k: PositiveInt | None = Field(
        default=None, description="How many documents to return; None keeps all, reordered."
    )
    query: str | None = Field(default=None, description="Default query, overridable per call.")
    document_field: str = Field(
        default="content",
        description="Where the text lives: a key or attribute, dotted paths reach into nesting.",
    )
    original_score_field: str = Field(
        default="score",
        description="Where the previous stage's score lives (dotted path); copied untouched.",
    )

    @field_validator("document_field", "original_score_field")
    @classmethod
    def _check_path(cls, value: str) -> str:
        segments = value.split(".")
        if not all(_PATH_SEGMENT.match(s) for s in segments):
            raise ValueError(
                f"{value!r} is not a field path: use a name or dotted names such as "
                "'metadata.body' (no empty segments or spaces)"
            )
        return value

    @field_validator("query")
    @classmethod
    def _check_query(cls, value: str | None) -> str | None:
        problem = None if value is None else text_problem(value)
        if problem is not None:
            raise ValueError(f"query {problem}; leave it unset or give a non-empty string")
        return value


# How one call reads its documents and how many it returns; every other setting (the fields of
# EngineSettings) configures the scoring engine and reaches the integrations by inheritance.
CALL_SETTINGS = frozenset({"top_k", "query", "document_field", "original_score_field"})
ENGINE_SETTINGS = tuple(EngineSettings.model_fields)


def config_from_settings(settings: Mapping[str, Any], *, owner: str = "Reranker") -> RerankConfig:
    """`RerankConfig` from a caller's settings, or a `ConfigError` naming every bad one.

    pydantic's `ValidationError` is not a `CrossrankError`, and for a misspelt keyword it says
    only "extra inputs are not permitted"; the caller gets the setting's name, the value it
    refused and, for an unknown name, the nearest known one.
    """
    try:
        return RerankConfig.model_validate(dict(settings))
    except ValidationError as exc:
        problems = [_describe(error) for error in exc.errors()]
        raise ConfigError(f"invalid {owner} setting(s): " + "; ".join(problems)) from exc


def _describe(error: Any) -> str:
    name = str(error["loc"][0]) if error["loc"] else None
    if error["type"] == "extra_forbidden" and name is not None:
        return f"unknown setting {name!r} ({suggest_setting(name)})"
    message = str(error["msg"]).removeprefix("Value error, ")
    if name is None:  # a rule across settings (model validators) names them itself
        return message
    given = error.get("input")
    if isinstance(given, str):  # a refused scorer URL may hold a password: never shown
        given = url_without_credentials(given)
    # Cut to 60 characters (a whole document passed as a setting: enough to recognise it);
    # safe_repr: a 5000-digit int cannot be repr'd.
    value = safe_repr(given, 60)
    return f"{name}={value}: {message}"


def suggest_setting(name: str, known: Any = None) -> str:
    """'did you mean ...?' for the nearest known setting, else the list of them all."""
    known = sorted(known if known is not None else RerankConfig.model_fields)
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    if close:
        return f"did you mean {close[0]!r}?"
    return "known settings: " + ", ".join(known)
