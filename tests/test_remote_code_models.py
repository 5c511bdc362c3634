"""`jina-reranker-v2` (jinaai/jina-reranker-v2-base-multilingual) ships its own model code:
without trust_remote_code=True it fails at once, saying so and what running that code allows;
with it, a model laid out like jina's (config.json without a model_type, `auto_map` to
configuration_xlm_roberta / modeling_xlm_roberta in the folder) loads and scores exactly as
plain transformers runs it.

The hub is out of reach, so the folder is built here: a tiny XLM-RoBERTa with jina's config
keys, and custom code files that subclass transformers' XLM-RoBERTa (and leave a marker when
imported, to prove whether they ran).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from crossrank import ModelLoadError, Reranker
from crossrank.models import loading
from crossrank.stage import parse_stage
from crossrank.testing import tiny_vocab

JINA = "jinaai/jina-reranker-v2-base-multilingual"

CONFIGURATION = """
import pathlib
pathlib.Path({marker!r}).touch()
from transformers import XLMRobertaConfig

class XLMRobertaFlashConfig(XLMRobertaConfig):
    model_type = "crossrank-test-xlm-roberta-flash"
"""
MODELING = """
from transformers import XLMRobertaForSequenceClassification as _Base
from .configuration_xlm_roberta import XLMRobertaFlashConfig

class XLMRobertaForSequenceClassification(_Base):
    config_class = XLMRobertaFlashConfig
"""


@pytest.fixture(scope="module")
def jina_like(tmp_path_factory) -> tuple[Path, Path]:
    """A folder laid out like jina-reranker-v2's, and the marker its code leaves when run."""
    import torch
    from transformers import BertTokenizerFast, XLMRobertaConfig
    from transformers import XLMRobertaForSequenceClassification as Plain

    root = tmp_path_factory.mktemp("jina-like")
    folder, marker = root / "jina-reranker-v2-tiny", root / "custom-code-ran"
    folder.mkdir()
    (folder / "vocab.txt").write_text("\n".join(tiny_vocab()) + "\n", encoding="utf-8")
    BertTokenizerFast.from_pretrained(str(folder), do_lower_case=True).save_pretrained(folder)
    torch.manual_seed(0)
    config = XLMRobertaConfig(
        vocab_size=len(tiny_vocab()),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=514,
        pad_token_id=0,  # the tokenizer's [PAD]
        num_labels=1,
        initializer_range=0.3,
    )
    Plain(config).eval().save_pretrained(folder)
    saved = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    del saved["model_type"]  # as in jina's config.json: only its own code knows the model
    saved["auto_map"] = {
        "AutoConfig": "configuration_xlm_roberta.XLMRobertaFlashConfig",
        "AutoModel": "modeling_xlm_roberta.XLMRobertaModel",
        "AutoModelForSequenceClassification": (
            "modeling_xlm_roberta.XLMRobertaForSequenceClassification"
        ),
    }
    (folder / "config.json").write_text(json.dumps(saved), encoding="utf-8")
    (folder / "configuration_xlm_roberta.py").write_text(
        CONFIGURATION.format(marker=str(marker)), encoding="utf-8"
    )
    (folder / "modeling_xlm_roberta.py").write_text(MODELING, encoding="utf-8")
    return folder, marker


@pytest.fixture
def modules_cache(tmp_path, monkeypatch):
    """transformers copies a model's code into its modules cache: keep that out of ~/.cache.

    Its package `transformers_modules` is imported from the first cache a process used; an
    earlier test's cache would shadow this one, so the package is imported afresh from here.
    """
    from transformers import dynamic_module_utils

    cache = tmp_path / "modules"
    cache.mkdir()
    monkeypatch.setattr(dynamic_module_utils, "HF_MODULES_CACHE", str(cache))
    monkeypatch.syspath_prepend(str(cache))
    for name in list(sys.modules):
        if name == "transformers_modules" or name.startswith("transformers_modules."):
            monkeypatch.delitem(sys.modules, name)


def test_the_stage_name_resolves_to_jinas_model():
    for name in (
        "jina-reranker-v2",
        "jina_reranker_v2",
        "jinaai__jina-reranker-v2-base-multilingual",
    ):
        config, _ = parse_stage({"stage_type": "sort", "parameters": {"model": name}})
        assert config.model == JINA


def test_the_hub_model_untrusted_fails_at_once_saying_what_it_needs():
    """Offline and not cached, the error still says what the model needs, not just 'offline'."""
    reranker = Reranker.from_stage(
        {"stage_type": "sort", "parameters": {"model": "jina-reranker-v2"}}
    )
    before = loading.load_count
    with pytest.raises(ModelLoadError) as info:
        reranker.rerank("q", ["abc"])
    message = str(info.value)
    assert JINA in message and "trust_remote_code=True" in message
    assert "runs it in this process" in message and "read and write files" in message
    assert loading.load_count == before


def test_the_hub_model_trusted_gets_as_far_as_the_hub():
    reranker = Reranker(model=JINA, trust_remote_code=True)
    with pytest.raises(ModelLoadError, match="HF_HUB_OFFLINE"):
        reranker.rerank("q", ["abc"])


def test_a_jina_like_folder_untrusted_names_its_code_and_runs_none(jina_like, modules_cache):
    folder, marker = jina_like
    with pytest.raises(ModelLoadError) as info:
        Reranker(model=str(folder)).rerank("q", ["abc"])
    message = str(info.value)
    assert "trust_remote_code=True" in message
    assert "configuration_xlm_roberta.py, modeling_xlm_roberta.py" in message
    assert "start programs" in message
    assert not marker.exists()


def test_a_jina_like_folder_trusted_loads_and_scores_as_transformers_does(jina_like, modules_cache):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    folder, marker = jina_like
    pairs = [
        ("wind tunnel", "a wind tunnel test of a wing"),
        ("wind tunnel", "boundary layer"),
        ("heat transfer", "heat transfer in a hypersonic flow over a cone, measured " * 3),
    ]
    ranked = Reranker(model=str(folder), trust_remote_code=True, device="cpu").rerank(
        pairs[0][0], [d for _, d in pairs[:2]]
    )
    assert marker.exists()  # the model's own code built it
    scores = {r.index: r.score for r in ranked}
    scores[2] = (
        Reranker(model=str(folder), trust_remote_code=True, device="cpu")
        .rerank(pairs[2][0], [pairs[2][1]])[0]
        .score
    )

    # reference: plain transformers with the model's code, one logit through a sigmoid
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True)
    assert type(model).__module__.endswith("modeling_xlm_roberta")
    batch = tokenizer(
        [q for q, _ in pairs], [d for _, d in pairs], padding=True, return_tensors="pt"
    )
    with torch.inference_mode():
        want = torch.sigmoid(model.eval()(**batch).logits[:, 0]).tolist()
    assert [scores[i] for i in range(3)] == pytest.approx(want, abs=1e-5)
