"""A generated class of 30 bandits submissions, graded by `graders batch`: the item analysis and the code similarity
of docs/instructor.md, and their screenshots.

    python bench/class_of_30.py OUT [--screenshots docs/] [--only ada.py ben.py ana.py]

The class: 11 independent implementations (tests/fixtures/similarity/bandits; 4 of them given a bug of their own),
3 disguised copies of them (renamed and reordered; everything; handed in as a notebook), 3 partial submissions,
5 untouched templates, and 8 hostile or broken entries (a syntax error, an exit at import, an endless loop, a binary
file, a notebook nested too deeply, a name that is a spreadsheet formula, a link, a file that is not code). Graded
with a small testbed (tests/helpers.py FAST_BANDITS), so it takes about a minute on 2 cores (`--only`: grade only
some of the class, a quick look). Prints the flagged pairs' count, stamped with the commit and settings, and writes
the same to OUT/provenance.json. Screenshots: Debian's chromium, headless (apt-get install chromium).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import similarity_corpus as corpus  # noqa: E402
from helpers import FAST_BANDITS  # noqa: E402

from bench import provenance  # noqa: E402

NAMES = ["ada", "ben", "chloe", "dev", "emma", "farid", "grace", "hugo", "ines", "jonas", "keiko", "liam", "maya",
         "noah", "olga", "pablo", "qing", "rosa", "sami", "tara", "umar", "vera", "wen", "xavi", "yara", "zoe"]
BUGS = {  # independent implementation -> (old, new): a mistake of that student's own
    "03": ("if self.rng.random() < self.epsilon:", "if self.rng.random() > self.epsilon:"),
    "05": ("lr = 1.0 / n if self.step_size is None", "lr = 1.0 / (n + 1) if self.step_size is None"),
    "07": ("return argmax_random_ties(np.where(self.N == 0, np.inf, u), self.rng)", "return argmax_random_ties(u, self.rng)"),
    "09": ("self.baseline += (rewards - self.baseline) / self.t", "self.baseline = rewards"),
}
PARTIAL = [  # (argmax body, epsilon-greedy act body): students who stopped early
    ("return np.argmax(values + rng.random(values.shape) * 1e-9, axis=1)", None),
    ("best = values == values.max(axis=1, keepdims=True)\n    return np.array([rng.choice(np.flatnonzero(r)) for r in best])",
     "if self.rng.random() < self.epsilon:\n            return self.rng.integers(0, self.Q.shape[1], self.Q.shape[0])\n"
     "        return argmax_random_ties(self.Q, self.rng)"),
    ("return np.argmax(values, axis=1)", "return argmax_random_ties(self.Q, self.rng)"),
]


def partial(argmax: str, act: str | None) -> str:
    text = corpus.template("bandits")
    place = "    # YOUR CODE HERE\n    raise NotImplementedError()\n"
    text = text.replace(place, f"    {argmax}\n", 1)
    if act:
        text = text.replace("        # YOUR CODE HERE\n        raise NotImplementedError()\n", f"        {act}\n", 1)
    return text


def build(folder: Path, only: list[str] | None = None) -> None:
    """The class in `folder`; with `only`, the other files are left out (a smaller class)."""
    folder.mkdir(parents=True)
    names = iter(NAMES)
    sources = corpus.all_implementations("bandits")
    for key, source in sources.items():
        if key in BUGS:
            old, new = BUGS[key]
            assert source.count(old) == 1, (key, old)
            source = source.replace(old, new)
        if key == "11":  # a name that is a spreadsheet formula, and code that prints a terminal escape
            source = source.replace("import numpy as np", "import numpy as np\nprint('\\x1b[2J hi')", 1)
            (folder / '=HYPERLINK("x").py').write_text(source)
        else:
            (folder / f"{next(names)}.py").write_text(source)
    (folder / "ana.py").write_text(corpus.reorder(corpus.rename(sources["02"], "bandits", 3), 3))
    (folder / "bo.py").write_text(corpus.everything(sources["06"], "bandits", 4))
    (folder / "cy.ipynb").write_text(corpus.as_notebook(corpus.recomment(sources["08"], 5)))
    for argmax, act in PARTIAL:
        (folder / f"{next(names)}.py").write_text(partial(argmax, act))
    template = ROOT / "assignments" / "bandits"
    for i in range(5):
        suffix = ".ipynb" if i < 3 else ".py"
        shutil.copy(template / f"bandits{suffix}", folder / f"{next(names)}{suffix}")
    (folder / "dan.py").write_text(sources["04"].replace("def update(self, actions", "def update(self actions", 1))
    (folder / "eli.py").write_text("import os\nos._exit(3)\n")
    (folder / "fay.py").write_text("while True:\n    pass\n")
    (folder / "gus.py").write_bytes(b"\x00\x01binary\xff" * 100)
    deep = "[" * 100_000 + "]" * 100_000
    (folder / "hal.ipynb").write_text('{"cells": ' + deep + "}")
    os.symlink(folder / "ada.py", folder / "ivo.py")
    (folder / "notes.txt").write_text("not a submission")
    if only:
        unknown = set(only) - {p.name for p in folder.iterdir()}
        if unknown:
            raise SystemExit(f"--only: no such file in the class: {sorted(unknown)}")
        for path in folder.iterdir():
            if path.name not in only:
                path.unlink()


def screenshot(page: Path, png: Path, width: int, height: int) -> None:
    """A PNG of a page, by Debian's chromium in headless mode, in 64 colours (small enough to keep in docs/)."""
    from PIL import Image

    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--window-size={width},{height}", f"--screenshot={png}", page.as_uri()],
                   check=True, capture_output=True, timeout=120)
    with Image.open(png) as image:
        small = image.convert("RGB").resize((width * 3 // 4, height * 3 // 4), Image.LANCZOS).quantize(64)
    small.save(png, optimize=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--screenshots", type=Path, help="write the screenshots into this folder (e.g. docs/)")
    parser.add_argument("--again", action="store_true", help="keep OUT's graded class; only `graders report` it again")
    parser.add_argument("--only", nargs="+", metavar="FILE", help="grade only these files of the class (a quick look)")
    args = parser.parse_args()
    start = time.monotonic()
    if args.again:
        command = ["report", str(args.out / "results")]
    else:
        if args.out.exists():
            shutil.rmtree(args.out)
        build(args.out / "submissions", args.only)
        config = args.out / "config.toml"
        config.write_text(FAST_BANDITS + "[limits]\nimport_seconds = 4\nmemory_mb = 2048\n")
        command = ["batch", "bandits", str(args.out / "submissions"), "--out", str(args.out / "results"), "--device",
                   "cpu", "-j", "2", "--config", str(config)]
    done = subprocess.run([sys.executable, "-m", "graders", *command], cwd=ROOT, capture_output=True, text=True)
    print(done.stdout[-3000:], done.stderr[-2000:], f"exit {done.returncode} in {time.monotonic() - start:.0f} s")
    results = args.out / "results"
    config = args.out / "config.toml"
    row = {**provenance.stamp({**vars(args), "command": command, "config": config.read_text()}),
           "flagged": (results / "similarity" / "pairs.csv").read_text().count(",yes")}
    print(json.dumps(row))
    (args.out / "provenance.json").write_text(json.dumps(row, indent=1) + "\n")
    if args.screenshots:
        screenshot(results / "report" / "index.html", args.screenshots / "class_report.png", 1000, 2200)
        screenshot(results / "similarity" / "index.html", args.screenshots / "class_similarity.png", 1000, 1000)
        screenshot(results / "similarity" / "pair-1.html", args.screenshots / "class_similarity_pair.png", 1300, 1000)


if __name__ == "__main__":
    main()
