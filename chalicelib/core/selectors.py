"""Harbor's selector library (`src/lib/selector`): which artifacts a retention or immutability rule
applies to. Pure: no I/O, shared by tag immutability now and tag retention later.

Patterns follow `github.com/bmatcuk/doublestar` v1.3, the version Harbor links, because users'
existing rules (Terraform, harbor-cli, the portal) were written against it:

- `*` any run of characters except `/`; `?` one character except `/`;
- `**` as a whole path component: zero or more components (`a/**/b` matches `a/b` and `a/x/y/b`;
  a trailing `a/**` needs something after `a/`); `**` inside a component is just `*`;
- `[abc]`, `[a-z]`, `[^a-z]` / `[!a-z]` one character (never `/`); an empty or unclosed class is an
  error; `{a,b,c}` alternatives, nestable, may hold any of the above; `\\x` a literal `x`;
- an empty pattern matches everything (Harbor's `match` shortcut); matching is case-sensitive.

It is written here rather than taken from wcmatch because wcmatch's globstar differs on exactly the
cases Harbor users hit (a trailing `**` also matches the bare parent, `{1..3}` expands to a numeric
range, dot-files need a flag), and a rule must select the same tags here as on Harbor.

Patterns are compiled once to a small automaton (cached) and validated when a rule is saved, so
enforcement on the push path never meets a malformed pattern. The automaton is simulated, never
backtracked: a regular expression's `[^/]*a[^/]*a...b` took seconds on a 128-character tag (and
held the GIL meanwhile); here a match costs at most (len(value) + 1) times the automaton's size.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

DOUBLESTAR = "doublestar"
LABEL = "label"

MATCHES = "matches"
EXCLUDES = "excludes"
REPO_MATCHES = "repoMatches"
REPO_EXCLUDES = "repoExcludes"
NS_MATCHES = "nsMatches"
NS_EXCLUDES = "nsExcludes"
WITH_LABELS = "withLabels"
WITHOUT_LABELS = "withoutLabels"

TAG_DECORATIONS = frozenset({MATCHES, EXCLUDES})
REPOSITORY_DECORATIONS = frozenset({REPO_MATCHES, REPO_EXCLUDES})
NAMESPACE_DECORATIONS = frozenset({NS_MATCHES, NS_EXCLUDES})
LABEL_DECORATIONS = frozenset({WITH_LABELS, WITHOUT_LABELS})
_EXCLUDING = frozenset({EXCLUDES, REPO_EXCLUDES, NS_EXCLUDES})

MAX_PATTERN_LENGTH = 1024
# `{a,b}{c,d}...` multiplies; past this many alternatives a pattern is refused, not expanded.
MAX_ALTERNATIVES = 256
# The terms of all alternatives together: bounds the states live at once, so a match of a value of
# n characters costs at most (n + 1) * 2 * MAX_AUTOMATON_SIZE steps, whatever the pattern.
MAX_AUTOMATON_SIZE = 2048


class InvalidPattern(ValueError):
    """A malformed doublestar pattern; the message says what is wrong, for a 400."""


@dataclass(frozen=True, slots=True)
class Candidate:
    """What a selector looks at: Harbor's `selector.Candidate`, reduced to what selectors read.

    `repository` is the name inside the project (`team/app`, not `proj/team/app`), as in Harbor.
    """

    repository: str
    namespace: str = ""
    tags: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Selector:
    """One `{kind, decoration, pattern, extras}` entry of a rule's tag or scope selectors.

    `untagged` is the tag selectors' `extras` `{"untagged": bool}`: whether an artifact without
    tags counts as selected (Harbor: default true for `matches`, false for `excludes`).
    """

    kind: str
    decoration: str
    pattern: str
    untagged: bool | None = None
    _labels: tuple[str, ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.kind == DOUBLESTAR:
            if self.decoration not in TAG_DECORATIONS | REPOSITORY_DECORATIONS | NAMESPACE_DECORATIONS:
                raise InvalidPattern(f"unknown doublestar decoration {self.decoration!r}")
            compile_pattern(self.pattern)
        elif self.kind == LABEL:
            if self.decoration not in LABEL_DECORATIONS:
                raise InvalidPattern(f"unknown label decoration {self.decoration!r}")
            labels = tuple(label for label in self.pattern.split(",") if label)
            object.__setattr__(self, "_labels", labels)
        else:
            raise InvalidPattern(f"unknown selector kind {self.kind!r}")

    def selects(self, candidate: Candidate) -> bool:
        if self.kind == LABEL:
            return self._select_labels(candidate)
        if self.decoration in TAG_DECORATIONS:
            return self._select_tags(candidate)
        value = candidate.repository if self.decoration in REPOSITORY_DECORATIONS else candidate.namespace
        # Harbor selects nothing on an empty repository or namespace, whatever the decoration.
        if not value:
            return False
        return matches(self.pattern, value) != (self.decoration in _EXCLUDING)

    def _select_tags(self, candidate: Candidate) -> bool:
        excluding = self.decoration == EXCLUDES
        if not candidate.tags:
            untagged = (not excluding) if self.untagged is None else self.untagged
            # Harbor's `excludes` inverts the flag for an untagged artifact (selector.go).
            return untagged != excluding
        if excluding:
            return any(not matches(self.pattern, tag) for tag in candidate.tags)
        return any(matches(self.pattern, tag) for tag in candidate.tags)

    def _select_labels(self, candidate: Candidate) -> bool:
        held = set(candidate.labels)
        if self.decoration == WITH_LABELS:
            return all(label in held for label in self._labels)
        return not any(label in held for label in self._labels)


def select_all(selectors: Iterable[Selector], candidate: Candidate) -> bool:
    """Every selector selects the candidate (a rule ANDs its selectors)."""
    return all(s.selects(candidate) for s in selectors)


def matches(pattern: str, value: str) -> bool:
    """Whether `value` matches the doublestar `pattern` as a whole. Raises InvalidPattern."""
    if not pattern:
        return True
    return compile_pattern(pattern).fullmatch(value)


def validate(pattern: str) -> str:
    compile_pattern(pattern)
    return pattern


@lru_cache(maxsize=1024)
def compile_pattern(pattern: str) -> Automaton:
    """The automaton equivalent to a doublestar pattern (cached per pattern)."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise InvalidPattern(f"pattern longer than {MAX_PATTERN_LENGTH} characters")
    tokens: list[_Token] = []
    starts: list[int] = []
    for alternative in dict.fromkeys(_expand_braces(pattern)):
        starts.append(len(tokens))
        tokens.extend(_path_tokens(alternative))
        tokens.append((_END, None))
        if len(tokens) > MAX_AUTOMATON_SIZE:
            raise InvalidPattern(f"pattern too complex: more than {MAX_AUTOMATON_SIZE} terms once expanded")
    return Automaton(tuple(tokens), tuple(starts))


# ------------------------------------------------------------------------------------------ braces


def _expand_braces(pattern: str) -> list[str]:
    """`a{b,c{d,e}}f` -> [abf, acdf, acef]; escapes and classes are copied through untouched."""
    results, end = _expand_sequence(pattern, 0, top=True)
    if end != len(pattern):  # pragma: no cover - _expand_sequence consumes everything at top level
        raise InvalidPattern("unbalanced braces")
    return results


def _expand_sequence(pattern: str, start: int, *, top: bool) -> tuple[list[str], int]:
    """Expand from `start` until a `,` or `}` that closes the enclosing group (or the end)."""
    results = [""]
    i = start
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            if i + 1 >= len(pattern):
                raise InvalidPattern("pattern ends with an unfinished escape")
            results = [r + pattern[i : i + 2] for r in results]
            i += 2
        elif char == "[":
            end = _class_end(pattern, i)
            results = [r + pattern[i : end + 1] for r in results]
            i = end + 1
        elif char == "{":
            options, i = _expand_group(pattern, i + 1)
            results = [r + o for r in results for o in options]
            if len(results) > MAX_ALTERNATIVES:
                raise InvalidPattern(f"pattern expands to more than {MAX_ALTERNATIVES} alternatives")
        elif char in ",}" and not top:
            return results, i
        else:
            results = [r + char for r in results]
            i += 1
    if not top:
        raise InvalidPattern("unclosed '{' in pattern")
    return results, i


def _expand_group(pattern: str, start: int) -> tuple[list[str], int]:
    """Alternatives of a `{...}` group that starts after its `{`; returns them and the index after `}`."""
    options: list[str] = []
    i = start
    while True:
        expanded, i = _expand_sequence(pattern, i, top=False)
        options.extend(expanded)
        if pattern[i] == "}":
            return options, i + 1
        i += 1  # a comma: the next alternative


def _class_end(pattern: str, start: int) -> int:
    """Index of the `]` closing the class that opens at `start` (escapes respected)."""
    i = start + 1
    if i < len(pattern) and pattern[i] in "^!":
        i += 1
    first = i
    while i < len(pattern):
        if pattern[i] == "\\":
            i += 2
            continue
        if pattern[i] == "]":
            if i == first:
                raise InvalidPattern("empty character class '[]'")
            return i
        i += 1
    raise InvalidPattern("unclosed '[' in pattern")


# ------------------------------------------------------------------------------------ automaton
#
# Each alternative becomes a list of terms; matching walks all of them at once over the value,
# keeping the set of positions still alive (a Thompson simulation). No position is ever revisited
# for the same character, so a match costs at most len(value) + 1 rounds of one step per live
# position: linear in the value, whatever the pattern (`*a*a*a*a*b` is no worse than `ab`).

_LITERAL, _ONE, _CLASS, _STAR, _GLOBSTAR, _REST, _END = range(7)
# (kind, argument): a literal's character, a class's (negated, characters, ranges), else None.
_Token = tuple[int, Any]
# Terms that may match nothing, so a position on them also stands on the next term.
_SKIPPABLE = frozenset({_STAR, _GLOBSTAR, _REST})
# Remembered steps per pattern (each a few hundred bytes at most); past this the memory starts over.
_MAX_CACHED_STEPS = 4096


@dataclass(frozen=True, slots=True)
class Automaton:
    """A compiled pattern. A live state is `2 * term + inside`, where `inside` is set only on a
    `**/` term that has consumed characters since its last `/` (it cannot be skipped there)."""

    tokens: tuple[_Token, ...]
    starts: tuple[int, ...]
    _start: frozenset[int] = field(init=False, compare=False, repr=False)
    _steps: dict[tuple[frozenset[int], str], frozenset[int]] = field(
        init=False, compare=False, repr=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "_start", frozenset(self._closure({2 * start for start in self.starts})))

    @property
    def size(self) -> int:
        """The most states that can be live at once."""
        return 2 * len(self.tokens)

    def fullmatch(self, value: str) -> bool:
        return self.run(value)[0]

    def run(self, value: str) -> tuple[bool, int]:
        """(whether `value` matches, how many state steps it took): the count proves the bound.

        Each (live states, character) -> next live states step is remembered (a DFA built lazily,
        at most `_MAX_CACHED_STEPS` of them per pattern), so a tag like the last costs a lookup per
        character; the count is of the states walked as if nothing were remembered."""
        tokens, cache = self.tokens, self._steps
        live = self._start
        steps = len(live)
        for char in value:
            if not live:
                break
            following = cache.get((live, char))
            if following is None:
                moved = {nxt for state in live if (nxt := _step(tokens[state >> 1], state, char)) is not None}
                following = frozenset(self._closure(moved))
                if len(cache) >= _MAX_CACHED_STEPS:
                    cache.clear()
                cache[(live, char)] = following
            live = following
            steps += len(live)
        return any(tokens[state >> 1][0] == _END for state in live), steps

    def _closure(self, states: set[int]) -> set[int]:
        """Add the positions reached by skipping terms that may match nothing (bounded by size)."""
        pending = list(states)
        while pending:
            state = pending.pop()
            if state & 1 == 0 and self.tokens[state >> 1][0] in _SKIPPABLE and state + 2 not in states:
                states.add(state + 2)
                pending.append(state + 2)
        return states


def _step(token: _Token, state: int, char: str) -> int | None:
    """The state after `char` from `state` standing on `token`, or None: that path dies."""
    kind, argument = token
    if kind == _REST:
        return state
    if kind == _GLOBSTAR:
        return state & ~1 if char == "/" else state | 1
    if kind == _LITERAL:
        return state + 2 if argument == char else None
    if kind == _END or char == "/":
        return None
    if kind == _STAR:
        return state
    return state + 2 if kind == _ONE or _in_class(argument, char) else None


def _in_class(argument: tuple[bool, frozenset[str], tuple[tuple[str, str], ...]], char: str) -> bool:
    negated, chars, ranges = argument
    inside = char in chars or any(low <= char <= high for low, high in ranges)
    return inside != negated


def _split_components(pattern: str) -> list[str]:
    """Split on `/` outside escapes and classes."""
    parts: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            current.append(pattern[i : i + 2])
            i += 2
        elif char == "[":
            end = _class_end(pattern, i)
            current.append(pattern[i : end + 1])
            i = end + 1
        elif char == "/":
            parts.append("".join(current))
            current = []
            i += 1
        else:
            current.append(char)
            i += 1
    parts.append("".join(current))
    return parts


def _path_tokens(pattern: str) -> list[_Token]:
    components = _split_components(pattern)
    last = len(components) - 1
    out: list[_Token] = []
    for index, component in enumerate(components):
        if component == "**":
            # Zero or more whole components; the separator after it is part of the repetition.
            out.append((_REST if index == last else _GLOBSTAR, None))
            continue
        out.extend(_component_tokens(component))
        if index != last:
            out.append((_LITERAL, "/"))
    return out


def _component_tokens(component: str) -> list[_Token]:
    out: list[_Token] = []
    i = 0
    while i < len(component):
        char = component[i]
        if char == "\\":
            out.append((_LITERAL, component[i + 1]))
            i += 2
        elif char == "*":
            while i < len(component) and component[i] == "*":
                i += 1
            out.append((_STAR, None))
        elif char == "?":
            out.append((_ONE, None))
            i += 1
        elif char == "[":
            end = _class_end(component, i)
            out.append((_CLASS, _class_token(component[i + 1 : end])))
            i = end + 1
        else:
            out.append((_LITERAL, char))
            i += 1
    return out


def _class_token(body: str) -> tuple[bool, frozenset[str], tuple[tuple[str, str], ...]]:
    """(negated, single characters, ranges) of a class body. A class never matches the
    separator, like every other single-character term (the automaton checks `/` first)."""
    negated = body[:1] in ("^", "!")
    if negated:
        body = body[1:]
    singles: set[str] = set()
    ranges: list[tuple[str, str]] = []
    chars = _class_chars(body)
    j = 0
    while j < len(chars):
        low, literal = chars[j]
        if low == "-" and not literal:
            raise InvalidPattern("a character range needs a start: '[-...]'")
        if j + 2 < len(chars) and chars[j + 1] == ("-", False):
            high, _ = chars[j + 2]
            if high < low:
                raise InvalidPattern(f"character range {low}-{high} is out of order")
            ranges.append((low, high))
            j += 3
            continue
        if j + 1 < len(chars) and chars[j + 1] == ("-", False):
            raise InvalidPattern("a character range needs an end: '[a-]'")
        singles.add(low)
        j += 1
    return negated, frozenset(singles), tuple(ranges)


def _class_chars(body: str) -> list[tuple[str, bool]]:
    """(character, escaped) pairs of a class body."""
    chars: list[tuple[str, bool]] = []
    i = 0
    while i < len(body):
        if body[i] == "\\":
            chars.append((body[i + 1], True))
            i += 2
        else:
            chars.append((body[i], False))
            i += 1
    return chars
