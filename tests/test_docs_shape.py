"""User docs speak to users: no internal issue numbers, and one Keep-a-Changelog shape."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
USER_DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

# "issue 23", "issue #17", "issue17b", "#12": this project's tracker, which users do not see
ISSUE_REFERENCE = re.compile(r"issue ?#?[0-9]+|#[0-9]{1,3}\b", re.I)
# https://keepachangelog.com/en/1.1.0/: these sections, each at most once per version, in this order
SECTIONS = ["Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"]


def issue_references(text: str) -> list[str]:
    # markdown anchors (`(#results--test-splits)`) and colours are not issue numbers
    text = re.sub(r"\]\(#[^)]*\)", "", text)
    return ISSUE_REFERENCE.findall(text)


def changelog_problems(text: str) -> list[str]:
    problems: list[str] = []
    version, seen = "", list[str]()
    versions = re.findall(r"^## (.*)$", text, re.M)
    if not versions or versions[0] != "[Unreleased]":
        problems.append("the first version section must be '## [Unreleased]'")
    for line in text.splitlines():
        if line.startswith("## "):
            version, seen = line[3:], []
        elif line.startswith("### "):
            name = line[4:].strip()
            if name not in SECTIONS:
                problems.append(f"{version}: unknown section {name!r}")
            elif name in seen:
                problems.append(f"{version}: a second {name!r} section")
            elif seen and SECTIONS.index(name) < SECTIONS.index(seen[-1]):
                problems.append(f"{version}: {name!r} after {seen[-1]!r}")
            seen.append(name)
    return problems


def test_user_docs_name_no_internal_issue_numbers():
    found = {
        str(p.relative_to(REPO)): refs
        for p in USER_DOCS
        if (refs := issue_references(p.read_text(encoding="utf-8")))
    }
    assert not found, f"say what the thing is instead of its issue number: {found}"


def test_the_checks_catch_what_they_are_for():
    assert issue_references("as issue 12 said; fixed in #7; see issue17b") == [
        "issue 12",
        "#7",
        "issue17",
    ]
    assert issue_references("see [results](lam.md#results--test-splits)") == []
    bad = "## [Unreleased]\n### Changed\n### Added\n### Fixed\n### Fixed\n### Notes\n"
    assert changelog_problems(bad) == [
        "[Unreleased]: 'Added' after 'Changed'",
        "[Unreleased]: a second 'Fixed' section",
        "[Unreleased]: unknown section 'Notes'",
    ]
    assert changelog_problems("## [0.1.0]\n### Added\n") == [
        "the first version section must be '## [Unreleased]'"
    ]


def test_changelog_has_one_keep_a_changelog_shape():
    text = (REPO / "CHANGELOG.md").read_text(encoding="utf-8")
    assert changelog_problems(text) == []
    assert re.search(r"^## \[\d+\.\d+\.\d+\] - \d{4}-\d{2}-\d{2}$", text, re.M)
