from crossrank import Reranker


def test_rerank_orders_by_callable_scores():
    scores = {"a": 0.1, "b": 0.9, "c": 0.5}
    rr = Reranker(scorer=lambda pairs: [scores[d] for _, d in pairs])
    ranked = rr.rerank("q", ["a", "b", "c"])
    assert [r.document for r in ranked] == ["b", "c", "a"]
    assert [r.rerank_position for r in ranked] == [0, 1, 2]
