"""What a student's install of a kit costs: the time of its one install command and the size of the venv it makes.

    PYTHONPATH=. .venv/bin/python bench/kit_install.py bandits vae --out bench/results/kit_install.jsonl

For each assignment: build the kit (`python -m graders release`) into a fresh folder, then time the kit's command,
`python -m venv .venv && .venv/bin/pip install -r requirements.txt` (wall clock, and the CPU seconds it used), and
measure `.venv` (MB on disk, packages).
Run it with pip's cache warm (an earlier install of the same packages), as the rows say. `--pip-args` adds options
to pip for this machine only (on a machine that cannot reach PyTorch's index, `--retries 0` stops pip from waiting
on it once per package; a student's machine reaches it); the rows record them. `--grade` also times grading the
reference with the kit's own venv (`--check` to grade only those checks), as a student's first run would.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import provenance

ROOT = provenance.ROOT


def _cpu() -> float:
    """CPU seconds (user + system) of the children waited for so far: what a loaded machine does not inflate."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _megabytes(folder: Path) -> float:
    total = sum(p.lstat().st_size for p in folder.rglob("*") if p.is_file() or p.is_symlink())
    return round(total / 2**20, 1)


def measure(name: str, pip_args: list[str], grade: bool, checks: list[str], keep: Path | None) -> dict:
    folder = Path(tempfile.mkdtemp(prefix=f"kit-{name}-", dir=keep))
    kit = folder / name
    subprocess.run([sys.executable, "-m", "graders", "release", name, "--out", str(kit)], cwd=ROOT, check=True,
                   capture_output=True, timeout=1800)
    start, cpu = time.monotonic(), _cpu()
    subprocess.run([sys.executable, "-m", "venv", ".venv"], cwd=kit, check=True, timeout=600)
    done = subprocess.run([".venv/bin/pip", "install", "-r", "requirements.txt", *pip_args], cwd=kit,
                          capture_output=True, text=True, timeout=3600)
    seconds, cpu = round(time.monotonic() - start, 1), round(_cpu() - cpu, 1)
    if done.returncode != 0:
        raise SystemExit(f"{name}: the install failed:\n{done.stderr[-3000:]}")
    listed = subprocess.run([".venv/bin/pip", "list", "--format", "json"], cwd=kit, capture_output=True, text=True,
                            check=True)
    packages = {p["name"].lower(): p["version"] for p in json.loads(listed.stdout)}
    row = {"assignment": name, "install_seconds": seconds, "install_cpu_seconds": cpu, "venv_mb": _megabytes(kit / ".venv"),
           "kit_mb": round(_megabytes(kit) - _megabytes(kit / ".venv"), 1), "packages": len(packages),
           "torch": packages.get("torch"), "cuda_packages": sorted(n for n in packages if n.startswith("nvidia")),
           "requirements": [line for line in (kit / "requirements.txt").read_text().splitlines()
                            if not line.startswith("#")]}
    if grade:
        reference = folder / f"{name}.py"
        reference.write_text((ROOT / "solutions" / name / f"{name}.py").read_text())
        start = time.monotonic()
        graded = subprocess.run([".venv/bin/python", "-m", "graders", "grade", name, str(reference), "--device", "cpu",
                                 *(a for c in checks for a in ("--check", c))], cwd=kit, capture_output=True,
                                text=True, timeout=3600, env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
        row["grade_seconds"] = round(time.monotonic() - start, 1)
        row["grade_stderr"] = graded.stderr[-500:]
        row["grade_table"] = graded.stdout[-4000:]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("assignments", nargs="+")
    parser.add_argument("--pip-args", default="", help="extra options for pip on this machine, e.g. '--retries 0'")
    parser.add_argument("--grade", action="store_true", help="also grade the reference with the kit's venv")
    parser.add_argument("--check", action="append", default=[], help="with --grade: only this check (repeatable)")
    parser.add_argument("--keep", type=Path, help="build the kits under this folder (default: a temporary one)")
    parser.add_argument("--out", type=Path, help="append rows (JSON lines) here")
    args = parser.parse_args()
    pip_args = shlex.split(args.pip_args)
    stamp = provenance.stamp({**vars(args), "pip_args": pip_args, "pip_cache": "warm", "checks": args.check,
                              "python": sys.version.split()[0]})
    for name in args.assignments:
        row = {**stamp, **measure(name, pip_args, args.grade, args.check, args.keep),
               "load_average_1min": round(os.getloadavg()[0], 2)}
        print(json.dumps(row), flush=True)
        if args.out:
            with args.out.open("a") as f:
                f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
