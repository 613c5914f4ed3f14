"""The grader's Python environment, as the worker must see it: in every mode, the worker imports what the grader imports.

A worker that finds its own site-packages depends on where its interpreter believes it
lives: a venv reached through a symbolic link (`.venv -> /data/venvs/course`) finds
its `pyvenv.cfg` only beside the path it was started by, and a folder that a `.pth` file
or an editable install adds is nowhere near the interpreter. When the worker missed
them, every submission failed with "No module named 'torch'" (issue 28).

So the grader hands its own environment over, entry by entry:

- the worker runs the grader's interpreter by the path the grader was started with
  (`sys.executable`, links kept), with `-S`: no site processing of its own;
- its import path is the grader's standard library entries, then `site.addsitedir`
  of each of the grader's site directories, in the grader's order: that runs their
  `.pth` files, so the folders they add and the import hooks of editable installs are
  the grader's;
- under bubblewrap (`mounts`), every folder of that environment is mounted at its real
  path, and each symbolic link on the way to it (a linked venv, a linked project
  folder, a conda prefix reached through a link) is made again inside, so that every
  path resolves inside as it does outside.

What the worker never gets: the grader's own checkout (the folder that holds the
`graders` package, but for a Python environment inside it, such as `.venv`), the
current folder, and `PYTHONPATH` (the worker runs isolated, `-I`).
"""

from __future__ import annotations

import functools
import os
import re
import site
import sys
from dataclasses import dataclass

from graders.paths import REPO_ROOT


@dataclass(frozen=True)
class Environment:
    """What a worker's interpreter needs, as the grader sees it (paths as the grader reaches them)."""

    executable: str  # the grader's interpreter as started: a venv's bin/python, links kept
    stdlib: tuple[str, ...]  # the import path before the site directories (pythonXY.zip, lib/pythonX.Y, lib-dynload)
    site_dirs: tuple[str, ...]  # processed by the worker itself, in order (their .pth files run there)
    added: tuple[str, ...]  # what .pth files and editable installs add: only mounted (the worker adds them itself)
    libraries: tuple[str, ...]  # folders of the shared libraries the interpreter loaded (libpython outside its prefix)
    prefixes: tuple[str, ...]  # the installation and the venv (pyvenv.cfg, bin/)
    prefix: str = sys.prefix  # a venv's, which `site` sets (-S skips it)
    exec_prefix: str = sys.exec_prefix

    def folders(self) -> list[str]:
        """Every file or folder the worker must read, as the grader reaches it."""
        seen: dict[str, None] = {}
        for path in (*self.prefixes, os.path.dirname(self.executable), *self.stdlib, *self.site_dirs, *self.added,
                     *self.libraries):
            if path and os.path.exists(path) and not private(path):
                seen.setdefault(os.path.abspath(path))
        return list(seen)


def bootstrap(env: Environment) -> str:
    """The `python -I -S -B -c` program that starts a worker: the grader's import path, then the worker.

    argv: PACKAGE_ROOT (the folder holding only the worker package, first on the path), then the worker's own.
    """
    return (f"import sys, site; sys.path[:] = [sys.argv[1], *{list(env.stdlib)!r}]\n"
            f"sys.prefix, sys.exec_prefix = {env.prefix!r}, {env.exec_prefix!r}\n"
            f"for d in {list(env.site_dirs)!r}:\n    site.addsitedir(d)\n"
            "site.setquit(); site.setcopyright(); site.sethelper(); site.execsitecustomize()\n"
            "from graders_worker.main import main; main(sys.argv[2:])")


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def private(path: str) -> bool:
    """The grader's checkout (or a folder holding it), but for Python environments inside it: the prefixes (a
    `.venv`) and installed packages (a `site-packages` folder that another environment's .pth file names)."""
    real, repo = os.path.realpath(path), str(REPO_ROOT)
    if _inside(repo, real):
        return True
    if not _inside(real, repo):
        return False
    installed = {"site-packages", "dist-packages"} & set(real[len(repo):].split("/"))
    return not installed and not any(_inside(real, os.path.realpath(p)) for p in _prefixes())


def _prefixes() -> tuple[str, ...]:
    return tuple(dict.fromkeys(os.path.abspath(p) for p in (sys.prefix, sys.exec_prefix, sys.base_prefix,
                                                             sys.base_exec_prefix)))


def _site_dirs() -> list[str]:
    """The site directories the grader's `site` processed (its venv's, the base's when the venv includes them, the
    user's when enabled), in its order."""
    dirs = list(site.getsitepackages()) if hasattr(site, "getsitepackages") else []
    if site.ENABLE_USER_SITE:
        dirs.append(site.getusersitepackages())
    on_path = {os.path.abspath(p) for p in sys.path if p}
    return [d for d in dict.fromkeys(os.path.abspath(d) for d in dirs) if d in on_path and os.path.isdir(d)]


def _pth_folders(site_dir: str) -> list[str]:
    """The folders the .pth files of `site_dir` add, read as `site.addpackage` reads them."""
    found = []
    try:
        names = sorted(n for n in os.listdir(site_dir) if n.endswith(".pth") and not n.startswith("."))
    except OSError:
        return found
    for name in names:
        try:
            with open(os.path.join(site_dir, name), encoding="utf-8", errors="replace") as f:
                lines = f.read().splitlines()
        except OSError:
            continue
        for line in lines:
            if line.startswith("#") or line.startswith(("import ", "import\t")) or not line.strip():
                continue
            folder = os.path.abspath(os.path.join(site_dir, line.rstrip()))
            if os.path.exists(folder):
                found.append(folder)
    return found


def _editable_targets() -> list[str]:
    """Where the import hooks of editable installs look: setuptools' MAPPING and NAMESPACES, editables' redirections."""
    found: list[str] = []
    for finder in sys.meta_path:
        module = sys.modules.get(getattr(finder, "__module__", "") or "")
        mapping = getattr(module, "MAPPING", None)
        if isinstance(mapping, dict):
            found += [v for v in mapping.values() if isinstance(v, str)]
        namespaces = getattr(module, "NAMESPACES", None)
        if isinstance(namespaces, dict):
            found += [p for v in namespaces.values() if isinstance(v, list) for p in v if isinstance(p, str)]
        redirections = getattr(finder, "_redirections", None)
        if isinstance(redirections, dict):
            found += [v for v in redirections.values() if isinstance(v, str)]
    return [os.path.abspath(p) for p in found if os.path.exists(p)]


def _after_site(sites: list[str]) -> list[str]:
    """Entries after the first site directory: what the import lines of .pth files added (`site.addsitedir` of
    another environment, say); the current folder and PYTHONPATH come before the standard library."""
    first = next((i for i, p in enumerate(sys.path) if p and os.path.abspath(p) in sites), len(sys.path))
    return [os.path.abspath(p) for p in sys.path[first:] if p and os.path.isdir(p)]


def _libraries() -> list[str]:
    """The folders of the shared libraries this process has mapped (a Python linked to a libpython outside its prefix:
    Linuxbrew, a copied interpreter); only `*.so*` files, so no data file the grader maps is among them."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as f:
            mapped = {fields[5] for line in f if len(fields := line.rstrip("\n").split(None, 5)) == 6}
    except OSError:  # not Linux
        return []
    return sorted({os.path.dirname(p) for p in mapped if re.search(r"\.so(\.\d+)*$", p) and os.path.isfile(p)})


@functools.cache
def current() -> Environment:
    """This grader's environment (computed once: site directories and .pth files do not change while grading)."""
    prefixes = _prefixes()
    real_prefixes = {os.path.realpath(p) for p in prefixes}
    sites = _site_dirs()
    added = [p for d in sites for p in _pth_folders(d)] + _after_site(sites) + _editable_targets()
    from_site = {os.path.realpath(p) for p in (*sites, *added)}
    stdlib = []
    for entry in sys.path:
        if not entry or os.path.realpath(entry) in from_site:
            continue
        if any(_inside(os.path.realpath(entry), p) for p in real_prefixes) and not private(entry):
            stdlib.append(os.path.abspath(entry))
    return Environment(sys.executable, tuple(dict.fromkeys(stdlib)), tuple(sites),
                       tuple(p for p in dict.fromkeys(added) if not private(p)),
                       tuple(p for p in _libraries() if not private(p)), prefixes)


def symlinks_on(path: str) -> list[tuple[str, str]]:
    """Each symbolic link met while resolving `path`, as (where it lies, what it holds), in the order met."""
    links: list[tuple[str, str]] = []
    parts = [p for p in os.path.abspath(path).split("/") if p]
    current = "/"
    while parts and len(links) < 40:  # the kernel's own limit on links in one lookup
        name = parts.pop(0)
        if name == "..":
            current = os.path.dirname(current)
            continue
        candidate = os.path.join(current, name)
        if os.path.islink(candidate):
            target = os.readlink(candidate)
            links.append((candidate, target))
            if target.startswith("/"):
                current = "/"
            parts = [p for p in target.split("/") if p and p != "."] + parts
        else:
            current = candidate
    return links


def mounts(env: Environment, present: tuple[str, ...] = ()) -> tuple[list[str], list[tuple[str, str]]]:
    """(real folders to bind at their own path, outermost first; symbolic links to make again, in order).

    A link needs making only where it does not already lie inside a bound folder (a link
    inside /usr, or in `present`, such as /etc/alternatives, exists in the sandbox as it is)."""
    real = sorted({os.path.realpath(p) for p in env.folders()}, key=len)
    bound: list[str] = []
    for folder in real:
        if not any(_inside(folder, b) for b in bound):
            bound.append(folder)
    present = [*bound, "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", *present]
    links: dict[str, str] = {}
    for path in [env.executable, *env.folders()]:
        for where, target in symlinks_on(path):
            if not any(_inside(where, p) for p in present):  # a link shows nothing that is not bound
                links.setdefault(where, target)
    return bound, list(links.items())
