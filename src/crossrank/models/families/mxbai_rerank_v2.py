"""mxbai-rerank-v2 (base 0.5B, large 1.5B): a Qwen2 causal LM that answers 1 (relevant) or 0.

The recipe of `MxbaiRerankV2` in github.com/mixedbread-ai/mxbai-rerank
(mxbai_rerank/mxbai_rerank_v2.py), which the model cards
(huggingface.co/mixedbread-ai/mxbai-rerank-base-v2) use:

    prefix = "<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful
              assistant.<|im_end|>\\n<|im_start|>user\\n"
    query  = "query: {query}", or "instruction: {instruction}\\nquery: {query}"
    task   = "You are a search relevance expert who evaluates how well documents match search
              queries. For each query-document pair, carefully analyze the semantic
              relationship between them, then provide your binary relevance judgment (0 for
              not relevant, 1 for relevant).\\nRelevance:"
    suffix = "<|im_end|>\\n<|im_start|>assistant\\n"
    ids    = prefix + ids(query) + ids("\\n") + ids("document: {doc}") (only it is cut)
             + ids("\\n") + ids(task) + suffix
    score  = logit("1") - logit("0") at the last position, left padding

The instruction is optional (none by default). The card's max_length 8192 is the default. The
card cuts the query to 3/4 of max_length; crossrank never cuts it and refuses a query that
leaves no room. `activation="default"` is sigmoid of the difference, P("1"); the card's own
`normalize=True` rescales by an estimated maximum instead, which does not change the order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from crossrank.models.families.causal_lm import CausalLMReranker, Segments, token_ids

if TYPE_CHECKING:
    from crossrank.scorers.base import Pair

PREFIX = (
    "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
    "assistant.<|im_end|>\n<|im_start|>user\n"
)
SUFFIX = "<|im_end|>\n<|im_start|>assistant\n"
TASK = (
    "You are a search relevance expert who evaluates how well documents match search queries. "
    "For each query-document pair, carefully analyze the semantic relationship between them, "
    "then provide your binary relevance judgment (0 for not relevant, 1 for relevant).\n"
    "Relevance:"
)


class MxbaiRerankV2(CausalLMReranker):
    name = "mxbai-rerank-v2"
    takes_instruction = True
    default_max_length = 8192
    true_token = "1"
    false_token = "0"

    def segments(
        self, tokenizer: Any, pairs: Sequence[Pair], instruction: str | None
    ) -> list[Segments]:
        prefix, suffix, sep, task, marker = token_ids(
            tokenizer, [PREFIX, SUFFIX, "\n", TASK, "document:"]
        )
        queries = list(dict.fromkeys(q for q, _ in pairs))
        texts = [f"query: {q}" for q in queries]
        if instruction:  # the card adds the instruction line only when one is given
            texts = [f"instruction: {instruction}\n{t}" for t in texts]
        query_ids = dict(zip(queries, token_ids(tokenizer, texts, untrusted=True), strict=True))
        documents = token_ids(tokenizer, [f"document: {d}" for _, d in pairs], untrusted=True)
        return [
            Segments(prefix + query_ids[q] + sep, doc, sep + task + suffix, len(marker))
            for (q, _), doc in zip(pairs, documents, strict=True)
        ]
