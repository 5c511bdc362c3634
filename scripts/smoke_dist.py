"""`make dist`'s last step: in a fresh venv holding only the built wheels and their
dependencies, rerank through each package as a user would, offline, with a tiny model built on
disk. Run from outside the repository (scripts/release_check.sh does) so nothing is imported from
the source tree. Exits non-zero, with the failing check, on the first problem.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from importlib import metadata, resources
from pathlib import Path

QUERY = "what is a cross-encoder?"
TEXTS = [
    "Bi-encoders embed the query and the passage separately.",
    "A cross-encoder reads the query and the passage together.",
    "Cranfield is a test collection about aeronautics.",
]


def check(condition: bool, what: str) -> None:
    if not condition:
        raise SystemExit(f"smoke test failed: {what}")


def installed_not_source(module: object, distribution: str) -> None:
    where = Path(module.__file__)  # type: ignore[attr-defined]
    check("site-packages" in where.parts, f"{distribution} imported from {where}, not the venv")


def main() -> int:
    import crossrank
    from crossrank.testing import build_tiny_cross_encoder

    model = str(build_tiny_cross_encoder(Path(tempfile.mkdtemp(prefix="smoke-model-"))))

    # core: Python API, the command, versions, types
    installed_not_source(crossrank, "crossrank")
    check(crossrank.__version__ == metadata.version("crossrank"), "crossrank.__version__")
    ranked = crossrank.Reranker(model=model, top_k=2).rerank(QUERY, TEXTS)
    check([r.rerank_position for r in ranked] == [0, 1], "core rerank")
    command = Path(sys.executable).with_name("crossrank")
    version = subprocess.run([command, "--version"], capture_output=True, text=True, check=True)
    check(version.stdout.strip() == f"crossrank {crossrank.__version__}", "crossrank --version")
    cli = subprocess.run(
        [command, "rerank", "-q", QUERY, "-m", model, "-k", "1"],
        input=json.dumps(TEXTS),
        capture_output=True,
        text=True,
        check=True,
    )
    check(len(cli.stdout.splitlines()) == 1, f"crossrank rerank printed {cli.stdout!r}")

    # LangChain
    import langchain_crossrank
    from langchain_core.documents import Document

    installed_not_source(langchain_crossrank, "langchain-crossrank")
    reranker = langchain_crossrank.CrossRankReranker(model=model, top_k=2)
    docs = reranker.compress_documents([Document(t) for t in TEXTS], QUERY)
    check([d.metadata["rerank_position"] for d in docs] == [0, 1], "LangChain compress_documents")

    # LlamaIndex
    import llama_index.postprocessor.crossrank as li_crossrank
    from llama_index.core.schema import NodeWithScore, TextNode

    installed_not_source(li_crossrank, "llama-index-postprocessor-crossrank")
    check(
        li_crossrank.__version__ == metadata.version("llama-index-postprocessor-crossrank"),
        "llama_index.postprocessor.crossrank.__version__",
    )
    nodes = [NodeWithScore(node=TextNode(text=t), score=0.5) for t in TEXTS]
    out = li_crossrank.CrossRankRerank(model=model, top_n=2).postprocess_nodes(
        nodes, query_str=QUERY
    )
    check([n.node.metadata["rerank_position"] for n in out] == [0, 1], "LlamaIndex postprocess")

    for package in ("crossrank", "langchain_crossrank", "llama_index.postprocessor.crossrank"):
        check(resources.files(package).joinpath("py.typed").is_file(), f"{package}/py.typed")
    print(
        "smoke test passed: crossrank "
        f"{crossrank.__version__}, langchain-crossrank {langchain_crossrank.__version__}, "
        f"llama-index-postprocessor-crossrank {li_crossrank.__version__}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
