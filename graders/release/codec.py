"""Keys and stored values of a recording (graders/release/recorder.py writes it, replay.py reads it).

A call is keyed by a sha256 of its function's name and its arguments' exact contents:
numbers, strings, numpy arrays and torch tensors (dtype, shape, bytes), lists,
tuples, dicts, dataclasses, numpy Generators (their state) and plain functions (their
code, defaults and the values they close over). Anything else cannot be keyed
(`Unrecordable`): a call with it is not recorded, and its check is left to the
instructor's grader.

Values are stored as JSON, with arrays in an .npz file read with allow_pickle=False:
nothing in a recording is unpickled or evaluated.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types

import numpy as np


class Unrecordable(TypeError):
    """A value that cannot be keyed or stored (an object, a worker proxy, a closure over one)."""


def _torch():
    import sys

    return sys.modules.get("torch")


def _feed(h, value, depth: int = 0) -> None:
    if depth > 50:
        raise Unrecordable("nested too deeply")
    torch = _torch()
    if value is None or isinstance(value, (bool, int, str, bytes)):
        h.update(repr((type(value).__name__, value)).encode())
    elif isinstance(value, float):
        h.update(b"float:" + value.hex().encode())
    elif isinstance(value, (np.ndarray, np.generic)):
        array = np.ascontiguousarray(value)
        if array.dtype.hasobject:
            raise Unrecordable("an object array")
        h.update(f"nd:{array.dtype.str}:{array.shape}:".encode() + array.tobytes())
    elif torch is not None and isinstance(value, torch.Tensor):
        h.update(b"tensor:")
        _feed(h, value.detach().cpu().numpy(), depth + 1)
    elif torch is not None and isinstance(value, torch.dtype):
        h.update(f"torch.dtype:{value}".encode())
    elif isinstance(value, (list, tuple)):
        h.update(f"{type(value).__name__}:{len(value)}:".encode())
        for item in value:
            _feed(h, item, depth + 1)
    elif isinstance(value, dict):
        h.update(f"dict:{len(value)}:".encode())
        for key in sorted(value, key=repr):
            _feed(h, key, depth + 1)
            _feed(h, value[key], depth + 1)
    elif isinstance(value, np.random.Generator):
        h.update(b"generator:" + json.dumps(value.bit_generator.state, sort_keys=True, default=str).encode())
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        h.update(f"dataclass:{type(value).__qualname__}:".encode())
        for f in dataclasses.fields(value):
            _feed(h, f.name, depth + 1)
            _feed(h, getattr(value, f.name), depth + 1)
    elif isinstance(value, types.FunctionType):
        h.update(f"function:{value.__qualname__}:".encode())
        _feed_code(h, value.__code__, depth + 1)
        _feed(h, value.__defaults__, depth + 1)
        _feed(h, [cell.cell_contents for cell in value.__closure__ or ()], depth + 1)
    elif isinstance(value, types.ModuleType):
        h.update(f"module:{value.__name__}".encode())
    else:
        raise Unrecordable(f"a {type(value).__name__}")


def _feed_code(h, code: types.CodeType, depth: int) -> None:
    h.update(code.co_code + repr(code.co_names).encode())
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _feed_code(h, const, depth + 1)
        else:
            _feed(h, const, depth + 1)


def key(function: str, args: tuple, kwargs: dict) -> str:
    """The key of a call: raises Unrecordable when an argument cannot be keyed."""
    h = hashlib.sha256(function.encode() + b"\0")
    _feed(h, list(args))
    _feed(h, dict(kwargs))
    return h.hexdigest()


class Store:
    """JSON-able descriptions of values, with their arrays kept apart (for an .npz)."""

    def __init__(self, arrays: dict[str, np.ndarray] | None = None):
        self.arrays = arrays if arrays is not None else {}

    def _array(self, array: np.ndarray) -> str:
        if array.dtype.hasobject:
            raise Unrecordable("an object array")
        name = f"a{len(self.arrays)}"
        self.arrays[name] = np.array(array)
        return name

    def encode(self, value):
        torch = _torch()
        if value is None or isinstance(value, (bool, int, str)):
            return value
        if isinstance(value, float):
            return {"float": value.hex()}
        if isinstance(value, np.ndarray):
            return {"ndarray": self._array(value)}
        if isinstance(value, np.generic):
            return {"scalar": self._array(np.asarray(value))}
        if torch is not None and isinstance(value, torch.Tensor):
            return {"tensor": self._array(value.detach().cpu().numpy())}
        if isinstance(value, (list, tuple)):
            return {type(value).__name__: [self.encode(v) for v in value]}
        if isinstance(value, dict) and all(isinstance(k, str) for k in value):
            return {"dict": {k: self.encode(v) for k, v in value.items()}}
        raise Unrecordable(f"cannot store a {type(value).__name__}")

    def decode(self, data):
        if data is None or isinstance(data, (bool, int, str)):
            return data
        (tag, inner), = data.items()
        if tag == "float":
            return float.fromhex(inner)
        if tag == "ndarray":
            return self.arrays[inner].copy()
        if tag == "scalar":
            return self.arrays[inner][()]
        if tag == "tensor":
            import torch

            return torch.from_numpy(self.arrays[inner].copy())
        if tag in ("list", "tuple"):
            items = [self.decode(v) for v in inner]
            return items if tag == "list" else tuple(items)
        if tag == "dict":
            return {k: self.decode(v) for k, v in inner.items()}
        raise ValueError(f"unknown tag {tag!r} in a recording")
