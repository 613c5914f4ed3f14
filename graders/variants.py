"""Known buggy variants of a reference solution: one bug each, written as edits of the reference.

Each assignment keeps its variants in `solutions/NAME/variants.py` (instructor-only, like the
reference), in one format:

    VARIANTS = [
        Variant("epsilon_inverted", "explores with probability 1 - epsilon",
                edits=[("... < self.epsilon", "... > self.epsilon")], loses=("exploration_frequency",),
                messages={"exploration_frequency": "non-greedy actions"}),
    ]

Each edit must apply exactly once, so a variant follows the reference when it changes.
tests/test_assignments.py grades every variant: it loses exactly the unit checks it names
(and the training checks it names), each lost check's message carries a hint and the
words `messages` names, and every other unit check keeps its points. The benchmarks that
measure a check's power use the same list. To grade one by hand:

    python -m graders.variants bandits epsilon_inverted > /tmp/bug.py
    python -m graders grade bandits /tmp/bug.py
"""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
from dataclasses import dataclass, field
from types import ModuleType

from graders import assignments


@dataclass(frozen=True)
class Variant:
    name: str
    bug: str  # the bug in words
    edits: list[tuple[str, str]]
    loses: tuple[str, ...]  # the checks it must lose: all the unit checks it loses, and any training check
    messages: dict[str, str] = field(default_factory=dict)  # check -> words its message must contain
    config: str = ""  # instructor TOML for grading this variant (e.g. a shorter training)
    slow: bool = False  # it must lose a training check: long to grade
    assignment: str = ""  # set by load()

    def source(self, reference: str | None = None) -> str:
        """The reference with this variant's edits (each must apply exactly once)."""
        text = reference if reference is not None else assignments.solution_path(self.assignment).read_text()
        for old, new in self.edits:
            if text.count(old) != 1:
                raise ValueError(f"variant {self.name} does not apply: {old!r} occurs {text.count(old)} times")
            text = text.replace(old, new)
        return text


def _module(name: str) -> ModuleType:
    path = assignments.solution_path(name).with_name("variants.py")
    spec = importlib.util.spec_from_file_location(f"variants_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load(name: str) -> list[Variant]:
    """The variants of assignment `name`; none when it has no variants.py."""
    if not assignments.solution_path(name).with_name("variants.py").exists():
        return []
    return [dataclasses.replace(v, assignment=name) for v in _module(name).VARIANTS]


def by_name(name: str, variant: str) -> Variant:
    found = {v.name: v for v in load(name)}
    if variant not in found:
        raise KeyError(f"{name} has no variant {variant!r}; known: {', '.join(found)}")
    return found[variant]


def main(argv: list[str]) -> int:
    if len(argv) == 1:
        for v in load(argv[0]):
            print(f"{v.name:40} loses {', '.join(v.loses)}: {v.bug}")
        return 0
    if len(argv) != 2:
        print("usage: python -m graders.variants ASSIGNMENT [VARIANT]", file=sys.stderr)
        return 2
    sys.stdout.write(by_name(*argv).source())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
