"""A seccomp filter for the worker: no kernel objects that outlive it or reach past it.

Namespaces and uids separate workers' files, processes and IPC; a few kernel objects
cross both. A process can leave a key in its uid's keyring with "other" permissions
that any later process reads back from /proc/keys (keyrings are per uid and outlive
the processes; measured: an image's bytes passed from one worker uid to another after
the first had exited), a SysV IPC object or a POSIX message queue (the machine's IPC
namespace, in the process-limits mode), or a socket to anywhere (the network, in the
process-limits mode: a server of the student's that holds what one worker sends until
the next asks). Honest code uses none of them in a worker (no network under
bubblewrap already), so the filter refuses them everywhere:

    add_key, request_key, keyctl               -> EPERM
    shmget, semget, msgget, mq_open            -> EPERM
    io_uring_setup                             -> EPERM (it opens sockets past this filter)
    socket(domain) but AF_UNIX and AF_NETLINK  -> EAFNOSUPPORT

The i386 and x32 entry points of an x86_64 kernel (other syscall numbers) are refused
whole. The filter is built for x86_64 only; elsewhere `program()` is None and the
result says what is not enforced (`missing()`). It is installed by bubblewrap
(`--seccomp FD`) or, without bubblewrap, between fork and exec (`installer`), where a probe
shows it can be (a container may forbid seccomp: then the worker runs without it, and
`missing()` says so).
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import platform
import struct
import subprocess
import sys

AUDIT_ARCH_X86_64 = 0xC000003E
X32_SYSCALL_BIT = 0x40000000
# x86_64 syscall numbers (arch/x86/entry/syscalls/syscall_64.tbl)
REFUSED = {"shmget": 29, "semget": 64, "msgget": 68, "mq_open": 240, "add_key": 248, "request_key": 249,
           "keyctl": 250, "io_uring_setup": 425}
SOCKET = 41
ALLOWED_DOMAINS = (1, 16)  # AF_UNIX, AF_NETLINK

# classic BPF (linux/filter.h, linux/seccomp.h)
_LD_W_ABS, _JEQ_K, _JGE_K, _RET_K = 0x20, 0x15, 0x35, 0x06
_RET_ALLOW = 0x7FFF0000
_RET_ERRNO = 0x00050000
_NR, _ARCH, _ARG0 = 0, 4, 16  # offsets in struct seccomp_data
_PR_SET_NO_NEW_PRIVS, _PR_SET_SECCOMP, _SECCOMP_MODE_FILTER = 38, 22, 2


def _op(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("<HBBI", code, jt, jf, k)


def program() -> bytes | None:
    """The filter as an array of struct sock_filter, or None on a machine it is not written for."""
    if platform.machine() != "x86_64":
        return None
    deny = _RET_ERRNO | errno.EPERM
    ops = [_op(_LD_W_ABS, _ARCH), _op(_JEQ_K, AUDIT_ARCH_X86_64, jt=1), _op(_RET_K, deny),  # other ABIs: refused
           _op(_LD_W_ABS, _NR), _op(_JGE_K, X32_SYSCALL_BIT, jf=1), _op(_RET_K, deny)]
    for nr in REFUSED.values():
        ops += [_op(_JEQ_K, nr, jf=1), _op(_RET_K, deny)]
    ops += [_op(_JEQ_K, SOCKET, jf=len(ALLOWED_DOMAINS) + 2), _op(_LD_W_ABS, _ARG0)]
    for i, domain in enumerate(ALLOWED_DOMAINS):
        ops.append(_op(_JEQ_K, domain, jt=len(ALLOWED_DOMAINS) - i))
    ops += [_op(_RET_K, _RET_ERRNO | errno.EAFNOSUPPORT), _op(_RET_K, _RET_ALLOW)]
    return b"".join(ops)


OPEN = "kernel keyrings, SysV IPC, message queues and (without bubblewrap) the network are open to the worker"


def missing() -> str:
    """'' where the filter is installed, else what is not enforced, in words."""
    if program() is None:
        return f"no seccomp filter for {platform.machine()}: {OPEN}"
    return _cannot_install()


@functools.cache
def _cannot_install() -> str:
    """'' when a child can install the filter here (a container may forbid seccomp), else why not."""
    try:
        done = subprocess.run([sys.executable, "-I", "-S", "-c", "pass"], preexec_fn=Installer(program()),
                              capture_output=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"the seccomp filter cannot be installed here ({exc}): {OPEN}"
    return "" if done.returncode == 0 else f"a process under the seccomp filter fails here: {OPEN}"


def memfd() -> int | None:
    """A file descriptor holding the filter, for bubblewrap's --seccomp (None where there is none)."""
    if missing():
        return None
    code = program()
    fd = os.memfd_create("grader-seccomp", os.MFD_CLOEXEC)
    os.write(fd, code)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


class _Fprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def installer():
    """What installs the filter in a child between fork and exec (a no-op where there is none)."""
    return Installer(None if missing() else program())


class Installer:
    """Installs `code` in a child between fork and exec; everything is allocated in the parent."""

    def __init__(self, code: bytes | None):
        self._buffer = ctypes.create_string_buffer(code) if code else None
        self._prog = _Fprog(len(code) // 8, ctypes.addressof(self._buffer)) if code else None
        self._libc = ctypes.CDLL(None, use_errno=True)

    def __call__(self) -> None:
        if self._prog is None:
            return
        if self._libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 or \
                self._libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(self._prog), 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "cannot install the worker's seccomp filter")
