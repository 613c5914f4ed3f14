"""The worker's confinement, mode by mode: what the worker can see, reach and use.

Each test runs a tiny submission in a real worker (bandits assignment: its adapter
is the only extra import) and asks it, through a plain top-level function, what it
can do. Bubblewrap tests are skipped where bubblewrap does not work.
"""

from __future__ import annotations

import os
import resource
import sys
import time

import pytest
from helpers import NEEDS_BUBBLEWRAP, NEEDS_FASHION_MNIST

from graders.config import Config
from graders.sandbox import Limits, StudentError, Worker, WorkerDied, WorkerTimeout, isolation

ROOT = isolation.Path(__file__).resolve().parent.parent
MODES = ("bubblewrap", "process")

PROBE = """
import os, socket

def can_read(path):
    try:
        with open(path, "rb") as f:
            f.read(1)
        return True
    except OSError:
        return False

def can_write(path):
    try:
        with open(path, "a"):
            pass
        return True
    except OSError:
        return False

def listdir(path):
    try:
        return sorted(os.listdir(path))
    except OSError:
        return None

def whoami():
    return [os.getuid(), os.getgid(), os.getpid(), os.getppid(), os.getcwd(), os.environ.get("HOME")]

def connect(host, port):
    try:
        socket.create_connection((host, port), timeout=1).close()
        return True
    except OSError:
        return False

def environment():
    return dict(os.environ)

def printf(text):
    import ctypes
    ctypes.CDLL(None).printf(text.encode())  # C's stdout, fully buffered on a pipe
    return len(text)

def spawn(n):
    import subprocess
    for _ in range(n):
        subprocess.Popen(["sleep", "300"], start_new_session=True)
    return n

def fork_until_refused():
    children = 0
    try:
        while children < 10_000:
            if os.fork() == 0:
                import time
                time.sleep(300)
            children += 1
    except OSError:
        pass
    return children

def write_mb(path, mb):
    with open(path, "wb") as f:
        for _ in range(mb):
            f.write(b"x" * (1 << 20))
    return mb

def hog(mb):
    import time
    block = bytearray(mb << 20)
    time.sleep(300)
    return len(block)

def shout(n):
    print("x" * n, flush=True)
    return n

def try_import(names):
    import importlib
    failed = []
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError:
            failed.append(name)
    return failed
"""


def worker(mode: str, **kwargs) -> Worker:
    try:
        isolation.plan(mode)
    except isolation.IsolationUnavailable as exc:
        pytest.skip(NEEDS_BUBBLEWRAP if "not installed" in str(exc) else f"bubblewrap does not work here: {exc}")
    limits = kwargs.pop("limits", Limits())
    limits.isolation = mode
    return Worker("bandits", PROBE, limits=limits, **kwargs)


@pytest.mark.parametrize("mode", MODES)
def test_protocol_works_and_output_is_captured(mode):
    with worker(mode) as w:
        assert w.call("shout", 5) == 5
        assert w.output.strip() == "xxxxx"
        assert w.isolation.startswith("bubblewrap" if mode == "bubblewrap" else "process limits")


@pytest.mark.parametrize("mode", MODES)
def test_what_native_code_printed_during_a_call_is_kept_though_the_worker_is_stopped_at_once(mode):
    w = worker(mode)
    assert w.call("printf", "from C\n") == 7
    w.close()
    assert "from C" in w.output


def test_bubblewrap_hides_the_repository_and_the_machine(tmp_path):
    secret = tmp_path / "instructor.toml"
    secret.write_text("seeds = [1]\n")
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.bin").write_bytes(b"\x01")
    with worker("bubblewrap", readable=[data]) as w:
        uid, gid, pid, ppid, cwd, home = w.call("whoami")
        if os.geteuid() == 0:
            assert uid in isolation.WORKER_UIDS and gid == isolation.SANDBOX_GID
        assert pid < 10 and ppid <= 1  # a new pid namespace
        assert cwd == home == isolation.SCRATCH
        assert set(w.call("listdir", str(ROOT)) or []) <= {".venv"}  # the venv may live in the repository
        assert w.call("listdir", str(ROOT / "solutions")) is None
        assert w.call("listdir", str(ROOT / "graders")) is None
        assert not w.call("can_read", str(secret))
        assert w.call("can_read", str(data / "train.bin"))  # what the grader allows
        assert not w.call("can_write", str(data / "train.bin"))
        assert w.call("listdir", isolation.PACKAGE_ROOT) == ["graders_worker"]
        assert w.call("can_read", f"{isolation.PACKAGE_ROOT}/graders_worker/main.py")
        assert not w.call("can_write", f"{isolation.PACKAGE_ROOT}/graders_worker/main.py")
        assert not w.call("can_write", "/usr/new-file")
        assert w.call("can_write", "/scratch/mine") and w.call("can_write", "/tmp/mine")
        assert not w.call("can_read", "/etc/shadow")
        assert w.call("listdir", "/home") is None


def test_bubblewrap_cuts_the_network():
    with worker("bubblewrap") as w:
        # /tmp is empty but for the folders leading to bound paths (the repo may lie under /tmp)
        made = {p.parts[2] for p in (ROOT, isolation.Path(sys.prefix)) if str(p).startswith("/tmp/")}
        assert set(w.call("listdir", "/tmp")) == made and w.call("listdir", "/home") is None
        import socket

        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen(1)
            assert not w.call("connect", "127.0.0.1", listener.getsockname()[1])
        assert not w.call("connect", "1.1.1.1", 53)


@pytest.mark.parametrize("mode", MODES)
def test_environment_is_scrubbed(mode, monkeypatch):
    monkeypatch.setenv("GRADER_SECRET_TOKEN", "hunter2")
    with worker(mode) as w:
        env = w.call("environment")
    assert "GRADER_SECRET_TOKEN" not in env
    assert env["OMP_NUM_THREADS"] == "1"


@pytest.mark.parametrize("mode", MODES)
def test_everything_the_worker_started_dies_with_it(mode):
    with worker(mode) as w:
        assert w.call("spawn", 3) == 3  # new sessions: out of the process group
        token = w._token
    time.sleep(0.5)
    mark = f"GRADER_WORKER_TOKEN={token}".encode()
    alive = []
    for entry in os.scandir("/proc"):
        try:
            if entry.name.isdigit() and mark in open(f"/proc/{entry.name}/environ", "rb").read().split(b"\0"):
                alive.append(entry.name)
        except OSError:
            pass
    assert alive == []


@pytest.mark.parametrize("mode", MODES)
def test_wall_clock_and_restart(mode):
    with worker(mode) as w:
        with pytest.raises(WorkerTimeout):
            w.call("hog", 1, deadline=time.monotonic() + 1.5)
        assert w.call("shout", 1) == 1
        assert w.starts == 2


@pytest.mark.parametrize("mode", MODES)
def test_file_size_limit(mode):
    with worker(mode, limits=Limits(file_size_mb=2)) as w:
        with pytest.raises((WorkerDied, StudentError)) as info:
            w.call("write_mb", "big", 8)
    assert "SIGXFSZ" in str(info.value) or "File too large" in str(info.value)


def test_scratch_is_a_bounded_tmpfs_under_bubblewrap():
    with worker("bubblewrap", limits=Limits(disk_mb=4, file_size_mb=64)) as w:
        with pytest.raises(StudentError, match="No space left"):
            w.call("write_mb", "big", 16)


@pytest.mark.parametrize("mode", MODES)
def test_resident_memory_watchdog(mode, monkeypatch):
    # no address-space limit (as on CUDA): the watchdog alone enforces memory_mb
    from graders.sandbox import worker as proxy

    with_as = proxy.rlimits
    monkeypatch.setattr(proxy, "rlimits", lambda *a, **k: [r for r in with_as(*a, **k) if r[0] != resource.RLIMIT_AS])
    with worker(mode, limits=Limits(memory_mb=300)) as w:
        with pytest.raises(WorkerDied, match="memory limit"):
            w.call("hog", 600)


def test_process_limit_applies_to_the_sandbox_user():
    plan = isolation.plan("auto")
    if plan.mode != "bubblewrap" and plan.uid is None and os.geteuid() == 0:
        pytest.skip(f"{NEEDS_BUBBLEWRAP} (as root without it, RLIMIT_NPROC does not apply to uid 0)")
    with worker(plan.mode, limits=Limits(processes=20)) as w:
        assert w.call("fork_until_refused") < 60


@pytest.mark.parametrize("mode", MODES)
def test_output_is_capped(mode):
    with worker(mode, limits=Limits(output_kb=1)) as w:
        w.call("shout", 100_000)
        w.close()
        assert len(w.output) < 1200 and "more bytes of output dropped" in w.output


def test_limits_come_from_the_config(tmp_path):
    (tmp_path / "c.toml").write_text('[limits]\nisolation = "process"\nprocesses = 7\ndisk_mb = 9\n')
    limits = Config.load(tmp_path / "c.toml").sandbox_limits()
    assert (limits.isolation, limits.processes, limits.disk_mb) == ("process", 7, 9)
    with pytest.raises(ValueError):
        isolation.plan("chroot")


def test_missing_bubblewrap_falls_back_with_a_warning(monkeypatch, caplog):
    monkeypatch.setattr(isolation.shutil, "which", lambda name: None)
    isolation._warn_once.cache_clear()
    plan = isolation.plan("auto")
    assert plan.mode == "process" and "process limits only" in plan.describe()
    assert any("without bubblewrap" in r.message for r in caplog.records)
    with pytest.raises(isolation.IsolationUnavailable):
        isolation.plan("bubblewrap")


def test_readable_paths_must_exist(tmp_path):
    with pytest.raises(FileNotFoundError):
        Worker("bandits", "", readable=[tmp_path / "missing"])


def test_gpu_devices_are_passed_only_for_cuda():
    cpu = isolation.bwrap_command(["python"], submission_dir="/tmp", readable=[], device="cpu", scratch_mb=8)
    cuda = isolation.bwrap_command(["python"], submission_dir="/tmp", readable=[], device="cuda", scratch_mb=8)
    assert not any(a.startswith("/dev/nvidia") for a in cpu)
    assert "/sys" in cuda and "/sys" not in cpu
    assert "--unshare-net" in cpu and "--die-with-parent" in cpu and "--unshare-pid" in cpu


@pytest.mark.skipif(not os.path.isdir("/usr/share/datasets"), reason=NEEDS_FASHION_MNIST)
def test_bubblewrap_hides_debians_datasets_the_test_split_included():
    with worker("bubblewrap") as w:
        assert w.call("listdir", "/usr/share/datasets") == []
        assert w.call("listdir", "/usr/share") not in (None, [])  # the rest of /usr stays


def _grader_modules() -> list[str]:
    import pkgutil

    import graders

    return ["graders"] + [m.name for m in pkgutil.walk_packages(graders.__path__, "graders.")]


@pytest.mark.parametrize("mode", MODES)
def test_no_grader_side_module_can_be_imported_in_the_worker(mode):
    names = _grader_modules()
    assert "graders.policy_gradient.exact" in names and "graders.vae.elbo" in names
    with worker(mode) as w:
        assert w.call("try_import", names) == names
        assert w.call("try_import", ["graders_worker.protocol", "graders_worker.rl.served_env"]) == []


def test_the_worker_package_never_imports_the_grader():
    import ast

    from graders.paths import WORKER_PACKAGE_DIR

    for path in WORKER_PACKAGE_DIR.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not [n for n in names if n == "graders" or n.startswith("graders.")], f"{path} imports {names}"


MATPLOTLIB = """
import io

import matplotlib.pyplot as plt


def draw():
    fig, ax = plt.subplots()
    ax.set_title("fonts are looked up")
    fig.savefig(io.BytesIO(), format="png")
    return 1
"""


@pytest.mark.parametrize("mode", MODES)
def test_matplotlib_draws_without_a_word_in_the_sandbox(mode):
    """Issue 26: students read "Your code printed: Fontconfig error: Cannot load default config file", which
    was matplotlib's font lookup (fc-list) inside bubblewrap without /etc/fonts, not their code."""
    try:
        isolation.plan(mode)
    except isolation.IsolationUnavailable as exc:
        pytest.skip(NEEDS_BUBBLEWRAP if "not installed" in str(exc) else f"bubblewrap does not work here: {exc}")
    with Worker("bandits", MATPLOTLIB, limits=Limits(isolation=mode)) as w:
        assert w.call("draw", timeout=120) == 1
        assert w.output == ""
