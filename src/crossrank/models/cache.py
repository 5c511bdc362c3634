"""A bounded LRU cache of scores, so that repeated (query, text) pairs cost nothing.

Keys are (namespace, query, sha256(text)): the namespace names the model and every setting
that changes a score (device, dtype, backend, quantisation, max_length), so two stages with
different settings never share an entry. Values are the model's raw outputs (before the
activation), so stages that differ only in `activation` can share them too.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class CacheInfo:
    """Counters of a `ScoreCache` (like `functools.lru_cache`'s `cache_info()`)."""

    hits: int
    misses: int
    size: int
    maxsize: int


def text_key(namespace: Hashable, query: str, text: str) -> tuple[Hashable, str, str]:
    """The cache key of one pair: the text is hashed so that keys stay small."""
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return (namespace, query, digest)


class ScoreCache:
    """A thread-safe LRU map from pair keys to raw scores, with hit and miss counts."""

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError("a ScoreCache needs maxsize >= 1")
        self.maxsize = maxsize
        self._data: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get_many(self, keys: Sequence[Hashable]) -> list[Any]:
        """The cached value of each key, or None where it is not cached (counted as a miss)."""
        out: list[Any] = []
        with self._lock:
            for key in keys:
                value = self._data.get(key)
                if value is None:
                    self.misses += 1
                else:
                    self._data.move_to_end(key)
                    self.hits += 1
                out.append(value)
        return out

    def put_many(self, keys: Sequence[Hashable], values: Sequence[Any]) -> None:
        with self._lock:
            for key, value in zip(keys, values, strict=True):
                self._data[key] = value
                self._data.move_to_end(key)
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)

    def info(self) -> CacheInfo:
        with self._lock:
            return CacheInfo(self.hits, self.misses, len(self._data), self.maxsize)

    def clear(self) -> None:
        """Drop every entry and reset the counters."""
        with self._lock:
            self._data.clear()
            self.hits = 0
            self.misses = 0

    def __len__(self) -> int:
        return len(self._data)
