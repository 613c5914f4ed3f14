"""The project's own files: dependencies agree, templates are current, the README's commands exist."""

from __future__ import annotations

import re
import sys

import yaml
from helpers import ROOT

from graders import assignments, templates

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def _names(requirements) -> dict[str, str]:
    parsed = {}
    for requirement in requirements:
        if ";" in requirement or requirement.startswith("-e"):
            continue
        name = re.match(r"[A-Za-z0-9_.\-]+", requirement).group(0).lower()
        parsed[name] = requirement.replace(" ", "")
    return parsed


def _dev_requirements(project: dict) -> list[str]:
    """What `make test` installs: the dependencies, and the dev extra with the project's extras it names."""
    wanted, extras = list(project["dependencies"]), ["dev"]
    while extras:
        for requirement in project["optional-dependencies"][extras.pop()]:
            own = re.fullmatch(rf"{re.escape(project['name'])}\[(.+)\]", requirement)
            if own:
                extras += own.group(1).split(",")
            else:
                wanted.append(requirement)
    return wanted


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = _names(_dev_requirements(project))
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in environment["dependencies"] if isinstance(d, dict))
    assert _names(pip) == wanted


def test_committed_templates_are_generated_from_the_solutions():
    for name in assignments.names():
        for path, text in templates.render(name).items():
            assert path.exists() and path.read_text() == text, f"{path} is stale: run `python -m graders templates`"


def test_every_assignment_has_its_parts():
    for name in assignments.names():
        assert assignments.grader(name).title and assignments.solution_path(name).exists()
        assert "### BEGIN SOLUTION" in assignments.solution_path(name).read_text()


def test_readme_gives_the_two_commands_that_ci_runs():
    readme = (ROOT / "README.md").read_text()
    assert "make validate" in readme and "make test" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_readme_pyproject_and_docs_list_every_assignment():
    """Issue 31 item 5: a new assignment shows in every list of them, or this test names the one that misses it."""
    readme = (ROOT / "README.md").read_text()
    description = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["description"]
    security = (ROOT / "docs" / "security.md").read_text()
    table = security[security.index("| assignment | check | certifies"):].split("\n\n")[0]
    certified = {n.strip() for line in table.splitlines()[2:] for n in line.split("|")[1].split(",")}
    for name in assignments.names():
        assert f"| `{name}` |" in readme, f"README.md's table of assignments misses {name}"
        assert re.search(rf"\b{name}\b", description), f"pyproject.toml's description misses {name}"
        assert (ROOT / "docs" / f"{name}.md").is_file(), f"docs/{name}.md is missing"
        assert name in certified, f"docs/security.md's 'What each number certifies' table misses {name}"
