"""Pairs of students whose code is more alike than independent work (an instructor-only output).

The fingerprints are copydetect's (MOSS's winnowing over a token stream in which every
name becomes `V`, `F` or `O`, every string `S`, and comments and whitespace vanish), so
renamed identifiers, changed comments and re-spaced code do not hide a copy, and
reordered functions keep almost all their fingerprints. The template's own code is
boilerplate: its fingerprints are removed from every student's before comparing, so
students who share only the starter code share nothing. A notebook is compared by its
code cells (all of them, in order), so a notebook and a `.py` file of the same code match.

A pair's score is the larger of the two shares: the part of one student's own
(non-template) code that is found in the other's. A copier who adds code of their own
keeps the copied share high; a student who wrote little (a few lines beyond the
template) cannot make pairs from common idioms because a flagged pair also needs
`MIN_OVERLAP` characters of shared code. THRESHOLD and MIN_OVERLAP are measured on
independent implementations and disguised copies (bench/similarity_threshold.py,
docs/instructor.md).

Everything read here is a student's file: it is never run or imported, only read as
text, at most MAX_CODE_CHARS of it (the batch already refused files over 5 MB); a file
that cannot be read as code (binary, not UTF-8, a notebook that is not JSON) is listed as
not compared, with why, and compared with no one.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

NOISE_CHARS = 25  # copydetect's k: the shortest shared run of filtered code that counts (its default)
GUARANTEE_CHARS = 30  # every shared run this long is found (winnowing window = 30 - 25 + 1; its default)
THRESHOLD = 0.7  # a pair is flagged from this share of one student's own code found in the other's (measured)
MIN_OVERLAP = 150  # ...and at least this many characters of filtered code shared (measured)
PREFILTER = 0.2  # pairs are compared in full when one side has this share of its fingerprints in the other's
MAX_READ_CHARS = 400_000  # of a student's code read (code cells of a notebook); the rest is cut, and said so
MAX_CODE_CHARS = 60_000  # of a student's own code compared (beyond the template); the rest is cut, and said so
MAX_ALIGNMENTS = 8  # passes of aligning the template with what is left of a student's code
TEMPLATE_MARK = "# ..."  # where template lines were left out of the code compared
MAX_CELLS = 2000


class SimilarityUnavailable(RuntimeError):
    """copydetect is not installed (it is the `similarity` extra of the project)."""


@dataclass
class Code:
    """One student's code as compared: the text (code cells joined for a notebook), or why it is not compared."""

    student: str
    text: str = ""
    problem: str = ""  # why this student's code is not compared ("" when it is)
    note: str = ""  # something the instructor should know (the code was cut)


@dataclass
class Pair:
    a: str
    b: str
    share_a: float  # the part of a's own code found in b's
    share_b: float
    overlap: int  # characters of filtered code shared, counted on the side where fewer are (a repeated idiom
    #               counts once per place it occurs, so the longer side could count one short match many times)
    fingerprints: float = 0.0  # the larger share of fingerprints one side has in the other (the prefilter's)
    slices_a: np.ndarray = field(repr=False, default_factory=lambda: np.zeros((2, 0), dtype=int))
    slices_b: np.ndarray = field(repr=False, default_factory=lambda: np.zeros((2, 0), dtype=int))

    @property
    def score(self) -> float:
        return max(self.share_a, self.share_b)


@dataclass
class Similarity:
    pairs: list[Pair]  # every pair compared in full (see `candidates`), highest score first
    codes: dict[str, Code]
    threshold: float = THRESHOLD
    min_overlap: int = MIN_OVERLAP

    def flagged(self) -> list[Pair]:
        return [p for p in self.pairs if flags(p, self.threshold, self.min_overlap)]

    @property
    def not_compared(self) -> list[Code]:
        return [c for c in self.codes.values() if c.problem]


def flags(pair: Pair, threshold: float = THRESHOLD, min_overlap: int = MIN_OVERLAP) -> bool:
    return pair.score >= threshold and pair.overlap >= min_overlap


def _copydetect():
    try:
        import copydetect.detector as detector
        import copydetect.utils as utils
    except ImportError as exc:
        raise SimilarityUnavailable("code similarity needs copydetect: pip install -e '.[similarity]' "
                                    f"(the project's extra) ({exc})") from None
    return detector, utils


def notebook_code(text: str) -> str:
    """The code cells of a notebook, in order, joined (each introduced by a comment, which comparing ignores)."""
    notebook = json.loads(text)  # ValueError, RecursionError: the caller's problem to name
    cells = notebook.get("cells") if isinstance(notebook, dict) else None
    if not isinstance(cells, list):
        raise ValueError("no list of cells")
    parts = []
    for index, cell in enumerate(cells[:MAX_CELLS], start=1):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        if isinstance(source, list):
            source = "".join(s for s in source if isinstance(s, str))
        if isinstance(source, str):
            parts.append(f"# In[{index}]\n{source}\n")
    return "\n".join(parts)


def read_code(student: str, path: Path | None) -> Code:
    """A student's code from their file (the code cells of a notebook), or a Code that says why it cannot be compared."""
    if path is None:
        return Code(student, problem="no copy of the file graded")
    try:
        data = path.read_bytes()
    except OSError as exc:
        return Code(student, problem=f"unreadable ({exc.strerror or exc})")
    if b"\0" in data:
        return Code(student, problem="a binary file (it holds NUL bytes)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return Code(student, problem="not UTF-8 text")
    if path.suffix == ".ipynb":
        try:
            text = notebook_code(text)
        except RecursionError:
            return Code(student, problem="a notebook whose JSON is nested too deeply")
        except ValueError as exc:
            return Code(student, problem=f"not a notebook ({str(exc)[:120]})")
    return Code(student, text.replace("\r\n", "\n").replace("\r", "\n"))


def template_texts(paths: Iterable[Path]) -> list[str]:
    """The code of the starter files (`.py` as is, `.ipynb` by its code cells)."""
    texts = []
    for path in paths:
        code = read_code("template", path)
        if code.problem:
            log.warning("template %s not used as boilerplate: %s", path, code.problem)
        else:
            texts.append(code.text)
    return texts


def _line_key(line: str) -> str:
    """A line as compared with the template's: without spaces, and without a trailing comment (when no string
    precedes it), so re-spaced or re-commented template lines are still the template's; a line that is only a
    comment is compared whole (the template's markdown cells, in a .py file, are the template's)."""
    code, hash_, _ = line.partition("#")
    if hash_ and code.strip() and "'" not in code and '"' not in code:
        line = code
    return "".join(line.split())


def own_code(text: str, templates: Sequence[str]) -> str:
    """The lines of `text` that are not the template's, each run of template lines left out shown as one comment.

    A template line counts as given where it lines up with the template (difflib's matching blocks of stripped
    lines), not wherever it appears. Without this, the few characters of template code around every place a student
    fills in (a `def` line, a docstring) would join each student's first and last tokens into fingerprints that all
    independent students share. Comparing only the student's own lines is also what makes it fast: the tokenizer
    reads a few kilobytes per student, not the whole template.
    """
    lines = text.split("\n")
    keys = [_line_key(line) for line in lines]
    given = [False] * len(lines)
    for template in templates:
        wanted = [key for line in template.split("\n") if (key := _line_key(line))]
        for rounds in range(MAX_ALIGNMENTS):  # again on what is left: a student may have moved template blocks
            shown = [i for i, key in enumerate(keys) if key and not given[i]]
            matcher = difflib.SequenceMatcher(None, wanted, [keys[i] for i in shown], autojunk=False)
            blocks = [b for b in matcher.get_matching_blocks() if b.size >= (1 if rounds == 0 else 2)]
            for block in blocks:
                for j in range(block.b, block.b + block.size):
                    given[shown[j]] = True
            if not blocks:
                break
    out: list[str] = []
    for line, is_given in zip(lines, given):
        if not is_given:
            if line.strip():
                out.append(line)
        elif not out or out[-1] != TEMPLATE_MARK:
            out.append(TEMPLATE_MARK)
    return "\n".join(out)


def _keep_own(code: Code, templates: Sequence[str]) -> None:
    """Reduce `code` to the student's own lines (cut where it is too long to read, and said so)."""
    text = code.text
    if len(text) > MAX_READ_CHARS:
        code.note = f"only the first {MAX_READ_CHARS:,} of {len(text):,} characters read"
        text = text[:MAX_READ_CHARS]
    text = own_code(text, templates)
    if len(text) > MAX_CODE_CHARS:
        code.note = f"only the first {MAX_CODE_CHARS:,} of {len(text):,} characters of its own code compared"
        text = text[:MAX_CODE_CHARS]
    code.text = text
    if not any(line.strip() and line != TEMPLATE_MARK for line in text.split("\n")):
        code.problem = "nothing beyond the template"


@dataclass
class Fingerprint:
    """What copydetect's `compare_files` reads of a document (the attributes of its CodeFingerprint)."""

    filtered_code: str
    offsets: np.ndarray
    hashes: set
    hash_idx: dict
    token_coverage: float
    k: int = NOISE_CHARS


def kgram_hashes(text: str, k: int = NOISE_CHARS) -> np.ndarray:
    """A 64-bit hash of every k-gram: the same in every process.

    copydetect hashes with Python's `hash()`, which each interpreter salts (PYTHONHASHSEED): the winnowing then
    keeps other fingerprints in each run, and the same class gave 653 shared characters in one run and 655 in
    another (a local and a Ray batch). A report must be reproducible, so the k-grams are hashed with blake2b.
    """
    data = [text[i:i + k].encode("utf-8", "surrogatepass") for i in range(len(text) - k + 1)]
    return np.array([int.from_bytes(hashlib.blake2b(d, digest_size=8).digest(), "little", signed=True) for d in data],
                    dtype=np.int64)


def fingerprint(text: str, boilerplate: np.ndarray | None = None) -> Fingerprint:
    """copydetect's tokens, filter and winnowing of `text`, minus the boilerplate's fingerprints."""
    _, utils = _copydetect()
    filtered, offsets = utils.filter_code(text, "code.py", "python")
    hashes, idx = utils.winnow(kgram_hashes(filtered), GUARANTEE_CHARS - NOISE_CHARS + 1, remove_duplicates=False)
    if boilerplate is not None and len(boilerplate):
        keep = ~np.isin(hashes, boilerplate)
        hashes, idx = hashes[keep], idx[keep]
    positions: dict[int, list[int]] = {}
    for h, i in zip(hashes.tolist(), idx.tolist()):
        positions.setdefault(h, []).append(i)
    return Fingerprint(filtered, offsets, set(positions), positions,
                       float(utils.get_token_coverage(positions, NOISE_CHARS, len(filtered))))


def boilerplate_hashes(templates: Iterable[str]) -> np.ndarray:
    """Every k-gram hash of the templates' filtered code (copydetect's boilerplate)."""
    _, utils = _copydetect()
    found = [kgram_hashes(utils.filter_code(t, "code.py", "python")[0]) for t in templates]
    return np.unique(np.concatenate(found)) if found else np.zeros(0, dtype=np.int64)


def compare(codes: Mapping[str, str | Code], templates: Iterable[str] = (), threshold: float = THRESHOLD,
            min_overlap: int = MIN_OVERLAP, prefilter: float = PREFILTER) -> Similarity:
    """Every pair of students sharing code beyond the templates' (`codes`: {student: code text or Code})."""
    detector, _ = _copydetect()
    found = {s: dataclasses.replace(c, student=s) if isinstance(c, Code) else Code(s, c) for s, c in codes.items()}
    templates = list(templates)
    for code in found.values():
        if not code.problem:
            _keep_own(code, templates)
    boilerplate = boilerplate_hashes(templates)
    prints = {}
    for student, code in found.items():
        if code.problem:
            continue
        try:
            prints[student] = fingerprint(code.text, boilerplate)
        except (RecursionError, MemoryError, ValueError) as exc:  # a lexer's limits; never one student's loss
            code.problem = f"could not be tokenized ({type(exc).__name__})"
    pairs = []
    for a, b in candidates(prints, prefilter):
        overlap_a, (share_a, share_b), (slices_a, slices_b) = detector.compare_files(prints[a], prints[b])
        overlap_b = share_b * prints[b].token_coverage
        if overlap_a > 0:
            pairs.append(Pair(a, b, float(share_a), float(share_b), int(round(min(overlap_a, overlap_b))),
                              fingerprint_share(prints[a], prints[b]), slices_a, slices_b))
    pairs.sort(key=lambda p: (-p.score, p.a, p.b))
    return Similarity(pairs, found, threshold, min_overlap)


def candidates(prints: Mapping[str, object], prefilter: float = PREFILTER) -> list[tuple[str, str]]:
    """The pairs worth comparing in full: one side has `prefilter` of its fingerprints in the other's.

    Comparing a pair in full (copydetect's slices) costs milliseconds, a class of 100 has 4950 pairs, and almost
    all of them share a few idioms only; a set intersection costs microseconds. bench/similarity_threshold.py
    checks that no pair scoring near the threshold has a smaller fingerprint share than PREFILTER.
    """
    owners: dict[int, list[str]] = {}
    for student, fp in prints.items():
        for h in fp.hashes:
            owners.setdefault(h, []).append(student)
    shared: dict[tuple[str, str], int] = {}
    for group in owners.values():
        for i, a in enumerate(group):
            for b in group[i + 1:]:
                key = (a, b) if a < b else (b, a)
                shared[key] = shared.get(key, 0) + 1
    return sorted(key for key, n in shared.items()
                  if n >= prefilter * min(len(prints[key[0]].hashes), len(prints[key[1]].hashes)))


def fingerprint_share(fp_a, fp_b) -> float:
    """The larger of the two shares of fingerprints one side has in common with the other."""
    common = len(fp_a.hashes & fp_b.hashes)
    return common / max(1, min(len(fp_a.hashes), len(fp_b.hashes)))


def highlighted(text: str, slices: np.ndarray) -> str:
    """`text` as HTML-escaped code with the shared runs in <mark>."""
    _, utils = _copydetect()
    if slices.size == 0:
        import html

        return html.escape(text)
    marked, _ = utils.highlight_overlap(text, _whole_words(text, slices), "<mark>", "</mark>", escape_html=True)
    return marked


def _whole_words(text: str, slices: np.ndarray) -> np.ndarray:
    """The shared runs widened to whole words: a run of filtered code may begin or end inside a name (`s|elf`)."""
    def word(i: int) -> bool:
        return 0 <= i < len(text) and (text[i].isalnum() or text[i] == "_")

    starts, ends = [], []
    for start, end in zip(*(np.asarray(s, dtype=int) for s in slices)):
        start, end = max(0, min(start, len(text))), max(0, min(end, len(text)))
        while word(start - 1) and word(start):
            start -= 1
        while word(end - 1) and word(end):
            end += 1
        if starts and start <= ends[-1]:  # merge runs the widening made touch
            ends[-1] = max(ends[-1], end)
        else:
            starts.append(start)
            ends.append(end)
    return np.array([starts, ends], dtype=int)
