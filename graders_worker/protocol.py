"""The only format that crosses the boundary between grader and worker.

A message is plain data: None, bool, int, float, str, lists, dicts with str keys,
and numpy arrays of numeric or bool dtype. It travels as a length-prefixed JSON
header followed by the raw bytes of its arrays. Nothing is pickled or evaluated,
so a hostile worker can at worst send wrong plain data, which the grader checks.
"""

from __future__ import annotations

import json
import math
import os
import select
import struct
import time

import numpy as np

ALLOWED_DTYPES = frozenset(
    ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
     "float16", "float32", "float64"]
)
MAX_MESSAGE_BYTES = 256 << 20
_LENGTH = struct.Struct("<Q")


class ProtocolError(Exception):
    """A message that is not plain data, or a broken stream."""


class ReadTimeout(Exception):
    """The other side did not complete a message by the deadline."""


_DTYPES = {name: np.dtype(name) for name in ALLOWED_DTYPES}
_DTYPE_NAMES = {dtype: name for name, dtype in _DTYPES.items()}  # native byte order only


def _array_to_plain(value: np.ndarray, buffers: list[bytes]) -> dict:
    name = _DTYPE_NAMES.get(value.dtype)
    if name is None and value.dtype.name in ALLOWED_DTYPES:  # the other byte order: send it as native
        value = value.astype(value.dtype.newbyteorder("="))
        name = value.dtype.name
    if name is None:
        raise ProtocolError(f"arrays of dtype {value.dtype} cannot be sent")
    buffers.append(np.ascontiguousarray(value).tobytes())
    return {"__array__": len(buffers) - 1, "dtype": name, "shape": list(value.shape)}


def to_plain(value, buffers: list[bytes]):
    """Turn a value into JSON-able data, moving arrays into `buffers`."""
    kind = type(value)
    if kind is np.ndarray:
        return _array_to_plain(value, buffers)
    if kind is dict or isinstance(value, dict):
        if not all(type(k) is str for k in value):
            raise ProtocolError("dict keys must be str")
        if "__array__" in value:
            raise ProtocolError("'__array__' is a reserved key")
        return {k: to_plain(v, buffers) for k, v in value.items()}
    if kind is list or kind is tuple or isinstance(value, (list, tuple)):
        return [to_plain(v, buffers) for v in value]
    if value is None or kind in (bool, str, int, float) or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (np.bool_, np.integer, np.floating)):
        return value.item()
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return _array_to_plain(value, buffers)
    raise ProtocolError(f"a value of type {type(value).__name__} cannot be sent; use plain data or numpy arrays")


def from_plain(value, buffers: list[bytes]):
    """Inverse of `to_plain`; builds fresh, plain ndarrays (never subclasses)."""
    if isinstance(value, list):
        return [from_plain(v, buffers) for v in value]
    if isinstance(value, dict):
        if "__array__" in value:
            dtype, shape, index = _DTYPES.get(value.get("dtype")), value.get("shape"), value["__array__"]
            if dtype is None or type(index) is not int or not 0 <= index < len(buffers):
                raise ProtocolError("malformed array")
            if not isinstance(shape, list) or not all(type(n) is int and n >= 0 for n in shape):
                raise ProtocolError("malformed array shape")
            if len(buffers[index]) != math.prod(shape) * dtype.itemsize:
                raise ProtocolError("array size does not match its shape")
            return np.frombuffer(buffers[index], dtype=dtype).reshape(shape).copy()
        return {k: from_plain(v, buffers) for k, v in value.items()}
    return value


def encode(message: dict) -> bytes:
    buffers: list[bytes] = []
    body = to_plain(message, buffers)
    header = json.dumps({"body": body, "sizes": [len(b) for b in buffers]}, allow_nan=True).encode()
    return b"".join([_LENGTH.pack(len(header)), header, *[_LENGTH.pack(len(b)) + b for b in buffers]])


def send(fd: int, message: dict, deadline: float | None = None) -> None:
    write(fd, encode(message), deadline)


def write(fd: int, data: bytes, deadline: float | None = None) -> None:
    """Write an encoded message whole, by `deadline` if given (else ReadTimeout).

    With a deadline the fd should be non-blocking, so that a reader that stopped
    reading cannot block the writer.
    """
    data = memoryview(data)
    while data:
        try:
            written = os.write(fd, data[: 1 << 16])  # a small message usually fits in the pipe: no select
        except BlockingIOError:
            written = 0
        data = data[written:]
        if data and deadline is not None:
            _, ready, _ = select.select([], [fd], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise ReadTimeout


class Reader:
    """Reads the messages of one fd, taking in whatever is ready with each system call.

    A message usually arrives whole, so reading it costs one select (with a deadline)
    and one read instead of one of each per part; bytes of the next message wait in
    the buffer.
    """

    def __init__(self, fd: int):
        self.fd = fd
        self._buffer = bytearray()

    @property
    def buffered(self) -> bool:
        """Whether bytes of a message are already read (a select on the fd would not see them)."""
        return bool(self._buffer)

    def _take(self, n: int, deadline: float | None) -> bytes:
        while len(self._buffer) < n:
            if deadline is not None:
                ready, _, _ = select.select([self.fd], [], [], max(0.0, deadline - time.monotonic()))
                if not ready:
                    raise ReadTimeout
            chunk = os.read(self.fd, max(n - len(self._buffer), 1 << 16))
            if not chunk:
                raise EOFError("the other side closed the channel")
            self._buffer += chunk
        data = bytes(self._buffer[:n])
        del self._buffer[:n]
        return data

    def _take_length(self, deadline: float | None) -> int:
        (n,) = _LENGTH.unpack(self._take(_LENGTH.size, deadline))
        if n > MAX_MESSAGE_BYTES:
            raise ProtocolError(f"message of {n} bytes is over the limit")
        return n

    def receive(self, deadline: float | None = None) -> dict:
        """Read one message, by `deadline` (time.monotonic) if given.

        Raises EOFError, ReadTimeout or ProtocolError.
        """
        try:
            header = json.loads(self._take(self._take_length(deadline), deadline))
        except (ValueError, UnicodeDecodeError) as exc:
            raise ProtocolError(f"message is not JSON: {exc}") from None
        if not isinstance(header, dict) or not isinstance(header.get("sizes"), list):
            raise ProtocolError("malformed message header")
        sizes = header["sizes"]
        if sum(s for s in sizes if type(s) is int) > MAX_MESSAGE_BYTES:
            raise ProtocolError("message over the size limit")
        buffers = [self._take(self._take_length(deadline), deadline) for _ in sizes]
        message = from_plain(header.get("body"), buffers)
        if not isinstance(message, dict):
            raise ProtocolError("a message must be a dict")
        return message
