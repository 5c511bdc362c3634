"""bge-reranker-v2-gemma: a Gemma-2B causal LM asked whether passage B answers query A.

The recipe of the model card (huggingface.co/BAAI/bge-reranker-v2-gemma, "For LLM-based
reranker"; the same code is in github.com/FlagOpen/FlagEmbedding, research/llm_reranker/
README.md, and `FlagLLMReranker` in FlagEmbedding/inference/reranker/decoder_only/base.py):

    prompt = "Given a query A and a passage B, determine whether the passage contains an
              answer to the query by providing a prediction of either 'Yes' or 'No'."
    ids    = [bos] + ids("A: {query}") + ids("\\n") + ids("B: {passage}")   (only B is cut)
             + ids("\\n") + ids(prompt)
    score  = logits[:, -1, ids("Yes")[0]]           (normalize=True: sigmoid of it)

The card's `prompt` argument is the `instruction` setting (default: the prompt above). The
card scores at max_length 1024 for the query and passage, plus the prompt: the default here is
1024 for all of it. The card also cuts the query to 3/4 of max_length; crossrank never cuts
the query and refuses one that leaves no room for the passage. There is no "No" token: the raw
output is the "Yes" logit, and `activation="default"` is the card's `normalize=True`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from crossrank.models.families.causal_lm import CausalLMReranker, Segments, token_ids

if TYPE_CHECKING:
    from crossrank.scorers.base import Pair

DEFAULT_PROMPT = (
    "Given a query A and a passage B, determine whether the passage contains an answer to the "
    "query by providing a prediction of either 'Yes' or 'No'."
)


class BgeRerankerGemma(CausalLMReranker):
    name = "bge-reranker-gemma"
    takes_instruction = True
    default_max_length = 1024
    true_token = "Yes"

    def segments(
        self, tokenizer: Any, pairs: Sequence[Pair], instruction: str | None
    ) -> list[Segments]:
        prompt = DEFAULT_PROMPT if instruction is None else instruction
        sep, marker = token_ids(tokenizer, ["\n", "B:"])
        (prompt_ids,) = token_ids(tokenizer, [prompt], untrusted=instruction is not None)
        bos = tokenizer.bos_token_id
        # FlagLLMReranker: the bos token only when there is one distinct from padding.
        start = [bos] if bos is not None and bos != tokenizer.pad_token_id else []
        queries = list(dict.fromkeys(q for q, _ in pairs))
        query_ids = dict(
            zip(
                queries,
                token_ids(tokenizer, [f"A: {q}" for q in queries], untrusted=True),
                strict=True,
            )
        )
        passages = token_ids(tokenizer, [f"B: {d}" for _, d in pairs], untrusted=True)
        return [
            Segments(start + query_ids[q] + sep, passage, sep + prompt_ids, len(marker))
            for (q, _), passage in zip(pairs, passages, strict=True)
        ]
