import langchain_crossrank
from langchain_core.documents import BaseDocumentCompressor
from langchain_core.retrievers import BaseRetriever
from langchain_crossrank import __all__

EXPECTED_ALL = ["CrossRankReranker", "CrossRankRetriever", "__version__"]


def test_all_imports() -> None:
    assert sorted(EXPECTED_ALL) == sorted(__all__)


def test_public_classes_are_langchain_types() -> None:
    assert issubclass(langchain_crossrank.CrossRankReranker, BaseDocumentCompressor)
    assert issubclass(langchain_crossrank.CrossRankRetriever, BaseRetriever)
    assert langchain_crossrank.__version__ == "0.1.0"
