"""The local-model scorer, as a model family x a runtime.

loading.py    find, check (safetensors only, no remote code unless allowed), load once per key
families/     how a pair becomes model input and how the output becomes a score
runtimes/     how a padded batch is executed (torch, ONNX Runtime)
batching.py   token-budget plan, padding, halving on out-of-memory
scorer.py     ModelScorer: cache -> family.encode -> batching -> runtime -> family.activate
"""

from crossrank.models.scorer import CrossEncoderScorer, ModelScorer, clear_model_cache

__all__ = ["CrossEncoderScorer", "ModelScorer", "clear_model_cache"]
