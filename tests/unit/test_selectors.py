"""The doublestar selector library against bmatcuk/doublestar v1.3 semantics (what Harbor links)."""

from __future__ import annotations

import pytest

from chalicelib.core.selectors import (
    MAX_ALTERNATIVES,
    MAX_AUTOMATON_SIZE,
    Candidate,
    InvalidPattern,
    Selector,
    compile_pattern,
    matches,
    select_all,
    validate,
)

MATCH_TABLE = [
    # pattern, value, expected
    ("", "anything/at/all", True),
    ("**", "", True),
    ("**", "v1", True),
    ("**", "a/b/c", True),
    ("*", "", True),
    ("*", "latest", True),
    ("*", "a/b", False),
    ("v*", "v1.2.3", True),
    ("v*", "release-v1", False),
    ("*-rc", "1.0-rc", True),
    ("*-rc", "1.0-rc1", False),
    ("v?", "v1", True),
    ("v?", "v10", False),
    ("v?", "v", False),
    ("a?b", "a/b", False),
    ("latest", "latest", True),
    ("latest", "Latest", False),
    ("latest", "latest2", False),
    ("1.0", "100", False),  # a dot is literal, not a regex wildcard
    ("v1.*", "v1.0", True),
    ("v1.*", "v1x0", False),
    ("[abc]*", "beta", True),
    ("[abc]*", "delta", False),
    ("[a-c]x", "bx", True),
    ("[a-c]x", "dx", False),
    ("[^a-c]x", "dx", True),
    ("[^a-c]x", "ax", False),
    ("[!a-c]x", "dx", True),
    ("[!a-c]x", "bx", False),
    ("a[^x]b", "a/b", False),  # a class never matches the separator
    ("[0-9][0-9]", "42", True),
    ("[0-9][0-9]", "4a", False),
    ("[\\]]", "]", True),
    ("[a\\-z]", "-", True),
    ("[a\\-z]", "b", False),
    ("{v1,v2}", "v1", True),
    ("{v1,v2}", "v2", True),
    ("{v1,v2}", "v3", False),
    ("{v1,v2}*", "v2.1", True),
    ("release-{dev,prod}-*", "release-prod-7", True),
    ("release-{dev,prod}-*", "release-qa-7", False),
    ("{a,b{c,d}}", "bd", True),
    ("{a,b{c,d}}", "b", False),
    ("{,x}y", "y", True),
    ("{,x}y", "xy", True),
    ("{a,b}/{c,d}", "b/c", True),
    ("{dev/*,prod}", "dev/app", True),
    ("{[,]x,y}", ",x", True),
    ("\\*", "*", True),
    ("\\*", "a", False),
    ("\\{a,b}", "{a,b}", True),
    ("a\\/b", "a/b", True),
    ("}", "}", True),
    ("a,b", "a,b", True),
    # Repository names: `**` spans components, `*` does not.
    ("**", "team/app", True),
    ("team/*", "team/app", True),
    ("team/*", "team/sub/app", False),
    ("team/**", "team/sub/app", True),
    ("team/**", "team", False),  # doublestar v1: a trailing ** needs something after the slash
    ("team/**", "team/", True),
    ("**/app", "app", True),
    ("**/app", "a/b/app", True),
    ("**/app", "a/b/app2", False),
    ("a/**/b", "a/b", True),
    ("a/**/b", "a/x/y/b", True),
    ("a/**/b", "a/x/y/c", False),
    ("a**b", "axyb", True),  # ** inside a component is *
    ("a**b", "ax/yb", False),
    ("**/**", "x", True),
    ("*/*", "a/b", True),
    ("*/*", "a", False),
    ("é*", "été", True),
]


@pytest.mark.parametrize(("pattern", "value", "expected"), MATCH_TABLE)
def test_matches(pattern: str, value: str, expected: bool) -> None:
    assert matches(pattern, value) is expected


@pytest.mark.parametrize(
    "pattern",
    ["[", "[]", "[]a", "a[b", "{a,b", "{a,{b}", "x\\", "[z-a]", "[-a]", "[a-]", "a" * 1025],
)
def test_malformed_patterns_are_refused(pattern: str) -> None:
    with pytest.raises(InvalidPattern):
        validate(pattern)


def test_brace_explosion_is_refused_not_expanded() -> None:
    bomb = "{a,b,c,d}" * 5  # 4**5 = 1024 alternatives
    assert MAX_ALTERNATIVES < 4**5
    with pytest.raises(InvalidPattern, match="alternatives"):
        validate(bomb)


def test_a_pattern_with_few_alternatives_is_fine() -> None:
    assert validate("{a,b}{c,d}{e,f}") == "{a,b}{c,d}{e,f}"
    assert matches("{a,b}{c,d}{e,f}", "bcf")


def _tag(decoration: str, pattern: str, untagged: bool | None = None) -> Selector:
    return Selector("doublestar", decoration, pattern, untagged)


SELECT_TABLE = [
    # selector, candidate, expected
    (_tag("matches", "v*"), Candidate("app", tags=("v1",)), True),
    (_tag("matches", "v*"), Candidate("app", tags=("latest",)), False),
    (_tag("matches", "v*"), Candidate("app", tags=("latest", "v2")), True),  # any tag matching is enough
    (_tag("excludes", "v*"), Candidate("app", tags=("latest",)), True),
    (_tag("excludes", "v*"), Candidate("app", tags=("v1",)), False),
    (_tag("excludes", "v*"), Candidate("app", tags=("v1", "latest")), True),  # one tag not excluded
    # Untagged artifacts: Harbor's defaults and the `extras` flag.
    (_tag("matches", "**"), Candidate("app"), True),
    (_tag("matches", "**", untagged=False), Candidate("app"), False),
    (_tag("excludes", "**"), Candidate("app"), True),
    (_tag("excludes", "**", untagged=True), Candidate("app"), False),
    # Repositories (names inside the project).
    (Selector("doublestar", "repoMatches", "team/**"), Candidate("team/app"), True),
    (Selector("doublestar", "repoMatches", "team/**"), Candidate("other/app"), False),
    (Selector("doublestar", "repoExcludes", "team/**"), Candidate("other/app"), True),
    (Selector("doublestar", "repoExcludes", "team/**"), Candidate("team/app"), False),
    (Selector("doublestar", "repoMatches", "{app,web}"), Candidate("web"), True),
    (Selector("doublestar", "repoMatches", "**"), Candidate(""), False),  # Harbor: empty selects nothing
    (Selector("doublestar", "nsMatches", "prod-*"), Candidate("app", namespace="prod-eu"), True),
    (Selector("doublestar", "nsExcludes", "prod-*"), Candidate("app", namespace="prod-eu"), False),
    # Labels: a comma-separated list.
    (Selector("label", "withLabels", "gold,signed"), Candidate("app", labels=("gold", "signed", "x")), True),
    (Selector("label", "withLabels", "gold,signed"), Candidate("app", labels=("gold",)), False),
    (Selector("label", "withoutLabels", "beta"), Candidate("app", labels=("gold",)), True),
    (Selector("label", "withoutLabels", "beta,rc"), Candidate("app", labels=("gold", "rc")), False),
    (Selector("label", "withLabels", ""), Candidate("app"), True),
]


@pytest.mark.parametrize(("selector", "candidate", "expected"), SELECT_TABLE)
def test_selects(selector: Selector, candidate: Candidate, expected: bool) -> None:
    assert selector.selects(candidate) is expected


@pytest.mark.parametrize(
    ("kind", "decoration", "pattern"),
    [
        ("regex", "matches", "v*"),
        ("doublestar", "withLabels", "v*"),
        ("doublestar", "matching", "v*"),
        ("label", "matches", "gold"),
        ("doublestar", "matches", "[oops"),
    ],
)
def test_bad_selectors_are_refused(kind: str, decoration: str, pattern: str) -> None:
    with pytest.raises(InvalidPattern):
        Selector(kind, decoration, pattern)


def test_select_all_ands_selectors() -> None:
    rule = [Selector("doublestar", "repoMatches", "app*"), _tag("matches", "v*")]
    assert select_all(rule, Candidate("app1", tags=("v1",)))
    assert not select_all(rule, Candidate("app1", tags=("latest",)))
    assert not select_all(rule, Candidate("web", tags=("v1",)))


ADVERSARIAL = [
    # pattern, value: each made a backtracking regex try every split of the value between its stars.
    ("*a*a*a*a*a*b", "a" * 128),
    ("*a" * 40 + "b", "a" * 128),
    ("**/" * 60 + "b", "a/" * 127),
    ("a/**/" * 40 + "c", "a/" * 127),
    ("{*,?*}" * 7 + "*a*a*", "a" * 255),  # 128 alternatives, every one live at once
    ("[ab]*" * 30 + "c", "ab" * 64),
    ("?*" * 60 + "!", "x" * 128),
]


@pytest.mark.parametrize(("pattern", "value"), ADVERSARIAL)
def test_matching_is_linear_in_the_value(pattern: str, value: str) -> None:
    automaton = compile_pattern(pattern)
    matched, steps = automaton.run(value)
    assert matched is matches(pattern, value)
    # At most one step per live state per character: (n + 1) * size. A backtracking matcher needs
    # O(n ** stars) tries on these inputs (`*a*a*a*a*a*b` on 128 `a`s took 9.5 s).
    assert steps <= (len(value) + 1) * automaton.size
    assert automaton.size <= 2 * MAX_AUTOMATON_SIZE


def test_the_reported_pattern_costs_a_few_thousand_steps() -> None:
    matched, steps = compile_pattern("*a*a*a*a*a*b").run("a" * 128)
    assert not matched
    assert steps < 2_000


def test_a_pattern_whose_expansion_is_too_large_is_refused() -> None:
    with pytest.raises(InvalidPattern, match="too complex"):
        validate("{a,b}" * 8 + "x" * 40)  # 256 alternatives of 48 terms each
