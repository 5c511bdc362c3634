"""Qwen3-Reranker (0.6B, 4B, 8B): a Qwen3 causal LM asked whether the document meets the query.

The recipe of the model card (huggingface.co/Qwen/Qwen3-Reranker-0.6B, "Transformers Usage";
the same code is `examples/qwen3_reranker_transformers.py` in github.com/QwenLM/Qwen3-Embedding):

    prefix = "<|im_start|>system\\nJudge whether the Document meets the requirements based on
              the Query and the Instruct provided. Note that the answer can only be "yes" or
              "no".<|im_end|>\\n<|im_start|>user\\n"
    body   = "<Instruct>: {instruction}\\n<Query>: {query}\\n<Document>: {doc}"
    suffix = "<|im_end|>\\n<|im_start|>assistant\\n<think>\\n\\n</think>\\n\\n"
    ids    = prefix_ids + tokenizer(body, cut to max_length - len(prefix + suffix)) + suffix_ids
    score  = softmax([logit("no"), logit("yes")])[1] at the last position, left padding

The body is tokenized as one string, as the card does, and cut from the right, which cuts only
the document (it comes last); crossrank refuses a query that would itself be cut. The card
scores at max_length 8192, which is the default here (the model declares 40960 positions).
P(yes) of the two-way softmax is sigmoid(logit("yes") - logit("no")): the raw output is that
difference.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from crossrank.errors import ModelLoadError
from crossrank.models.families.causal_lm import CausalLMReranker, Segments, token_ids

if TYPE_CHECKING:
    from crossrank.scorers.base import Pair

PREFIX = (
    "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query "
    'and the Instruct provided. Note that the answer can only be "yes" or "no".<|im_end|>\n'
    "<|im_start|>user\n"
)
SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
BODY = "<Instruct>: {instruction}\n<Query>: {query}\n<Document>: {doc}"
DEFAULT_INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query"


class Qwen3Reranker(CausalLMReranker):
    name = "qwen3-reranker"
    takes_instruction = True
    default_max_length = 8192
    true_token = "yes"
    false_token = "no"

    def answer_id(self, tokenizer: Any, token: str) -> int:
        # The card: tokenizer.convert_tokens_to_ids("yes") / ("no"), the tokens themselves.
        token_id = tokenizer.convert_tokens_to_ids(token)
        if token_id is None or token_id == tokenizer.unk_token_id:
            raise ModelLoadError(
                f"the tokenizer has no {token!r} token, which a {self.name} model answers with; "
                "is this a Qwen3-Reranker folder? Set model_family to the model's family"
            )
        return int(token_id)

    def segments(
        self, tokenizer: Any, pairs: Sequence[Pair], instruction: str | None
    ) -> list[Segments]:
        instruction = DEFAULT_INSTRUCTION if instruction is None else instruction
        prefix, suffix = token_ids(tokenizer, [PREFIX, SUFFIX])
        bodies = [BODY.format(instruction=instruction, query=q, doc=d) for q, d in pairs]
        heads = {q: BODY.format(instruction=instruction, query=q, doc="") for q, _ in pairs}
        head_ids = dict(
            zip(heads, token_ids(tokenizer, list(heads.values()), untrusted=True), strict=True)
        )
        return [
            # A head's last token can merge with the document's first one, hence the -1.
            Segments(prefix, body, suffix, max(len(head_ids[q]) - 1, 0))
            for (q, _), body in zip(
                pairs, token_ids(tokenizer, bodies, untrusted=True), strict=True
            )
        ]
