"""The APIs the server speaks: one request model and one answer per API, nothing else.

- the stage plugin contract, `POST /score`: `{"pairs": [[q, d], ...]}` -> `{"scores": [...]}`;
- Cohere's rerank, `POST /v1/rerank` and `/v2/rerank` (and `/rerank` with `documents`):
  `{model, query, documents, top_n, return_documents, max_tokens_per_doc}` ->
  `{id, results: [{index, relevance_score, document?}], meta}`, best first;
- text-embeddings-inference's rerank, `POST /rerank` with `texts`:
  `{query, texts, raw_scores, return_text, truncate}` -> `[{index, score, text?}]`, best first.

Bodies are untrusted: strings must be strings (no coercion of numbers or booleans), lists
must not be empty, and every refusal names the field and the item (`documents[3]`) without
quoting what was sent. Fields a client may add that change nothing here (Cohere's `priority`,
`relevant_spans`, TEI's `truncation_direction`) are accepted and ignored, so that official
clients work unchanged. `max_tokens_per_doc` and `truncate` are accepted; documents are cut at
the served model's pair length (the engine's `max_length`) or windowed per its
`long_documents` setting, the same as in-process.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
)

# Strict: a count is a JSON integer (not true, not "5", not 5.5).
PositiveInt = Annotated[StrictInt, Field(gt=0)]
Pair = Annotated[list[StrictStr], Field(min_length=2, max_length=2)]


class _Body(BaseModel):
    # Extra fields are ignored (clients add optional ones over time); nothing sent is echoed in
    # an error.
    model_config = ConfigDict(extra="ignore", hide_input_in_errors=True)


class ScoreRequest(_Body):
    """The stage plugin contract: pairs of (query, document) texts."""

    pairs: list[Pair] = Field(min_length=1)


class CohereRequest(_Body):
    """Cohere's rerank request (v1 and v2 share it; v1's documents may be `{"text": ...}`)."""

    model: StrictStr | None = None
    query: StrictStr
    documents: list[StrictStr] = Field(min_length=1)
    top_n: PositiveInt | None = None
    return_documents: StrictBool = False
    max_tokens_per_doc: PositiveInt | None = None

    @field_validator("documents", mode="before")
    @classmethod
    def _texts_of_objects(cls, value: Any) -> Any:
        # v1 (and infinity, Jina) allow {"text": "..."}; the text is what is ranked.
        if isinstance(value, list):
            return [d["text"] if isinstance(d, dict) and "text" in d else d for d in value]
        return value


class TeiRequest(_Body):
    """text-embeddings-inference's rerank request."""

    query: StrictStr
    texts: list[StrictStr] = Field(min_length=1)
    raw_scores: StrictBool = False
    return_text: StrictBool = False
    truncate: StrictBool | None = None


class BadRequest(Exception):
    """A request that will never succeed as sent: a 4xx naming the field (and item)."""

    def __init__(self, status: int, message: str, error_type: str = "Validation") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_type = error_type


def _where(loc: Sequence[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "body"


def parse(model: type[_Body], body: Any) -> Any:
    """`body` as `model`, or a 422 `BadRequest` naming each bad field and item."""
    if not isinstance(body, dict):
        raise BadRequest(422, f"the body must be a JSON object, not {_json_type(body)}")
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        problems = [f"{_where(e['loc'])}: {e['msg']}" for e in errors[:5]]
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        raise BadRequest(422, "; ".join(problems) + more) from None


def _json_type(value: Any) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


def rerank_kind(body: Any) -> Literal["tei", "cohere"]:
    """Which API a `POST /rerank` body speaks: TEI sends `texts`, Cohere `documents`."""
    if isinstance(body, dict) and "texts" in body and "documents" not in body:
        return "tei"
    if isinstance(body, dict) and "documents" in body and "texts" not in body:
        return "cohere"
    raise BadRequest(
        422,
        'POST /rerank takes TEI\'s body ({"query", "texts"}) or Cohere\'s ({"query", '
        '"documents"}): give exactly one of texts or documents',
    )


# -- answers ------------------------------------------------------------------------------------


def score_answer(scores: list[float]) -> dict[str, Any]:
    return {"scores": scores}


def cohere_answer(
    request: CohereRequest, ranked: list[tuple[int, float]], version: str
) -> dict[str, Any]:
    """Cohere's answer: results best first, cut at `top_n`; the documents when asked (v1)."""
    results = []
    for index, score in ranked[: request.top_n]:
        item: dict[str, Any] = {"index": index, "relevance_score": score}
        if request.return_documents:
            item["document"] = {"text": request.documents[index]}
        results.append(item)
    return {
        "id": str(uuid.uuid4()),
        "results": results,
        "meta": {"api_version": {"version": version}, "billed_units": {"search_units": 1}},
    }


def tei_answer(request: TeiRequest, ranked: list[tuple[int, float]]) -> list[dict[str, Any]]:
    """TEI's answer: `[{index, score}]` best first, with the text when `return_text`."""
    out = []
    for index, score in ranked:
        item: dict[str, Any] = {"index": index, "score": score}
        if request.return_text:
            item["text"] = request.texts[index]
        out.append(item)
    return out
