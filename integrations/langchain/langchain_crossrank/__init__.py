"""LangChain integration for crossrank: cross-encoder reranking with scores you can trust.

```python
from langchain_crossrank import CrossRankReranker

reranker = CrossRankReranker(top_k=5)
retriever = reranker.as_retriever(vector_store.as_retriever(search_kwargs={"k": 20}))
```
"""

from importlib import metadata

from langchain_crossrank.rerank import CrossRankReranker
from langchain_crossrank.retrievers import CrossRankRetriever

try:
    __version__ = metadata.version("langchain-crossrank")
except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = ""

__all__ = ["CrossRankReranker", "CrossRankRetriever", "__version__"]
