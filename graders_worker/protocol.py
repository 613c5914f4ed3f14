"""The only format that crosses the boundary between grader and worker.

A message is plain data: None, bool, int, float, str, lists, dicts with str keys,
and numpy arrays of numeric or bool dtype. It travels as a length-prefixed JSON
header followed by the raw bytes of its arrays. Nothing is pickled or evaluated,
so a hostile worker can at worst send wrong plain data, which the grader checks.

What a reader takes in is bounded before it is built, so that a message costs the
grader about its own size and no more (a hostile worker can write anything to the
pipe): the JSON part to `max_json` bytes (1 MB by default: parsing JSON costs tens of
times its size, so bulk data must travel as arrays), nesting to `MAX_DEPTH`, the array
buffers to `max_arrays` bytes in all, each read straight into the array it becomes,
after its dtype and shape were checked against its byte size.
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
MAX_JSON_BYTES = 1 << 20  # the grader's default; Limits.message_kb
MAX_ARRAY_BYTES = 256 << 20  # all the arrays of one message
MAX_ARRAYS = 1 << 16  # arrays in one message
MAX_DEPTH = 64  # nesting of lists and dicts
MAX_DIMS = 32
GRADER_MESSAGE_BYTES = 4 << 30  # what the worker takes from the (trusted) grader, JSON or arrays
MAX_JSON_ENV = "GRADER_MAX_JSON_BYTES"  # tells the worker the grader's `max_json`, for a clear error
WARM_ENV = "GRADER_WORKER_WARM"  # modules a worker imports after the submission, before it says ready
_LENGTH = struct.Struct("<Q")


class ProtocolError(Exception):
    """A message that is not plain data, or a broken stream."""


class MessageTooLarge(ProtocolError):
    """A message over the reader's caps."""


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


def _array(value: dict, buffers: list, used: set) -> np.ndarray:
    dtype, shape, index = _DTYPES.get(value.get("dtype")), value.get("shape"), value["__array__"]
    if dtype is None or type(index) is not int or not 0 <= index < len(buffers) or index in used:
        raise ProtocolError("malformed array")
    if not isinstance(shape, list) or len(shape) > MAX_DIMS or not all(
            type(n) is int and 0 <= n <= MAX_ARRAY_BYTES for n in shape):
        raise ProtocolError("malformed array shape")
    if math.prod(n for n in shape if n) > MAX_ARRAY_BYTES:  # numpy refuses it even with no element (a ValueError)
        raise ProtocolError("malformed array shape: more than an array can index")
    buffer = buffers[index]
    if len(buffer) != math.prod(shape) * dtype.itemsize:
        raise ProtocolError("array size does not match its shape")
    used.add(index)
    array = buffer if isinstance(buffer, np.ndarray) else np.frombuffer(bytearray(buffer), dtype=np.uint8)
    return array.view(dtype).reshape(shape)


def from_plain(value, buffers: list, _depth: int = 0, _used: set | None = None):
    """Inverse of `to_plain`; builds plain ndarrays (never subclasses) on `buffers` (each used once)."""
    used = set() if _used is None else _used
    if _depth > MAX_DEPTH:
        raise ProtocolError(f"data nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, list):
        return [from_plain(v, buffers, _depth + 1, used) for v in value]
    if isinstance(value, dict):
        if "__array__" in value:
            return _array(value, buffers, used)
        return {k: from_plain(v, buffers, _depth + 1, used) for k, v in value.items()}
    return value


def encode(message: dict) -> bytes:
    buffers: list[bytes] = []
    body = to_plain(message, buffers)
    header = json.dumps({"body": body, "sizes": [len(b) for b in buffers]}, allow_nan=True).encode()
    return b"".join([_LENGTH.pack(len(header)), header, *[_LENGTH.pack(len(b)) + b for b in buffers]])


def check_json_size(data: bytes, max_json: int) -> None:
    """MessageTooLarge when the JSON part of an encoded message is over `max_json` bytes (the reader's cap)."""
    (size,) = _LENGTH.unpack_from(data)
    if size > max_json:
        raise MessageTooLarge(f"{size >> 10} KB of plain data (lists, numbers, text), over the "
                              f"{max_json >> 10} KB limit; return bulk data as numpy arrays")


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
    the buffer. Array buffers are read straight into their arrays.
    """

    def __init__(self, fd: int, max_json: int = MAX_JSON_BYTES, max_arrays: int = MAX_ARRAY_BYTES):
        self.fd = fd
        self.max_json, self.max_arrays = max_json, max_arrays
        self._buffer = bytearray()

    def _wait(self, deadline: float | None) -> None:
        if deadline is not None:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.fd], [], [], max(0.0, left))
            if not ready or left <= 0:  # data always ready does not extend the deadline
                raise ReadTimeout

    @property
    def buffered(self) -> bool:
        """Whether bytes of a message are already read (a select on the fd would not see them)."""
        return bool(self._buffer)

    def _take(self, n: int, deadline: float | None) -> bytes:
        while len(self._buffer) < n:
            self._wait(deadline)
            chunk = os.read(self.fd, max(n - len(self._buffer), 1 << 16))
            if not chunk:
                raise EOFError("the other side closed the channel")
            self._buffer += chunk
        data = bytes(self._buffer[:n])
        del self._buffer[:n]
        return data

    def _take_into(self, target: memoryview, deadline: float | None) -> None:
        done = min(len(self._buffer), len(target))
        target[:done] = self._buffer[:done]
        del self._buffer[:done]
        while done < len(target):
            self._wait(deadline)
            got = os.readv(self.fd, [target[done:]])
            if not got:
                raise EOFError("the other side closed the channel")
            done += got

    def _take_length(self, deadline: float | None) -> int:
        (n,) = _LENGTH.unpack(self._take(_LENGTH.size, deadline))
        return n

    def receive(self, deadline: float | None = None) -> dict:
        """Read one message, by `deadline` (time.monotonic) if given.

        Raises EOFError, ReadTimeout, ProtocolError or MessageTooLarge (the rest of the
        message is then left unread: the stream cannot be used any more).
        """
        if deadline is not None and time.monotonic() >= deadline:
            raise ReadTimeout
        size = self._take_length(deadline)
        if size > self.max_json:
            raise MessageTooLarge(f"its JSON part has {size} bytes, over the {self.max_json >> 10} KB limit "
                                  "(bulk data must travel as numpy arrays)")
        try:
            header = json.loads(self._take(size, deadline))
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise ProtocolError(f"message is not JSON: {type(exc).__name__}") from None
        if not isinstance(header, dict) or not isinstance(header.get("sizes"), list):
            raise ProtocolError("malformed message header")
        sizes = header["sizes"]
        if len(sizes) > MAX_ARRAYS or not all(type(s) is int and s >= 0 for s in sizes):
            raise ProtocolError("malformed array sizes")
        if sum(sizes) > self.max_arrays:
            raise MessageTooLarge(f"its arrays have {sum(sizes)} bytes, over the {self.max_arrays >> 20} MB limit")
        buffers = []
        for declared in sizes:
            if self._take_length(deadline) != declared:
                raise ProtocolError("an array's length does not match the header")
            buffer = np.empty(declared, dtype=np.uint8)
            self._take_into(memoryview(buffer), deadline)
            buffers.append(buffer)
        message = from_plain(header.get("body"), buffers)
        if not isinstance(message, dict):
            raise ProtocolError("a message must be a dict")
        return message
