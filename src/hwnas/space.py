"""Search spaces: named discrete choices, conditional activity, and the immutable ``Arch``.

A space is pure data (no torch) so that searchers can reason about it without knowing what a
choice builds. Conditional choices (a block's kernel only matters when the stage is deep
enough to contain the block) are canonicalised: inactive choices hold ``None``, so two archs
that build the same network have the same key and are evaluated once.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hwnas.errors import HwnasError

Value = str | int | float | bool


@dataclass(frozen=True)
class Condition:
    """A choice is active only when ``parent`` takes one of ``values``."""

    parent: str
    values: frozenset[Value]

    def holds(self, assignment: Mapping[str, Value | None]) -> bool:
        return assignment.get(self.parent) in self.values


@dataclass(frozen=True)
class Choice:
    """One named decision.

    ``ordinal`` choices have ordered values (depth, width, kernel size): mutation moves to a
    neighbouring value and features encode position, so predictors can exploit the order.
    """

    name: str
    options: tuple[Value, ...]
    ordinal: bool = False
    condition: Condition | None = None

    def __post_init__(self) -> None:
        if not self.options:
            raise HwnasError(f"choice {self.name!r} has no options")
        if len(set(self.options)) != len(self.options):
            raise HwnasError(f"choice {self.name!r} has repeated options: {list(self.options)}")

    def index(self, value: Value) -> int:
        try:
            return self.options.index(value)
        except ValueError:
            raise HwnasError(
                f"choice {self.name!r}: {value!r} is not one of {list(self.options)}"
            ) from None


def categorical(name: str, options: Sequence[Value], **condition: Any) -> Choice:
    """A choice whose options have no order (operator type, activation)."""
    return Choice(name, tuple(options), ordinal=False, condition=_condition(**condition))


def ordinal(name: str, options: Sequence[Value], **condition: Any) -> Choice:
    """A choice whose options are ordered (depth, kernel size, expand ratio)."""
    return Choice(name, tuple(options), ordinal=True, condition=_condition(**condition))


def _condition(when: str | None = None, in_: Sequence[Value] | None = None) -> Condition | None:
    if when is None:
        return None
    return Condition(when, frozenset(in_ or ()))


@dataclass(frozen=True)
class Arch:
    """An immutable, canonical point of a space: one value (or ``None`` if inactive) per choice."""

    names: tuple[str, ...]
    values: tuple[Value | None, ...]
    key: str = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        pairs = zip(self.names, self.values, strict=True)
        key = ";".join(f"{n}={json.dumps(v)}" for n, v in pairs if v is not None)
        object.__setattr__(self, "key", key)

    def __getitem__(self, name: str) -> Value | None:
        return self.values[self.names.index(name)]

    def to_dict(self) -> dict[str, Value | None]:
        return dict(zip(self.names, self.values, strict=True))

    def __hash__(self) -> int:
        return hash(self.key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Arch) and self.key == other.key


class Space:
    """An ordered collection of choices; parents must come before the choices they condition."""

    def __init__(
        self,
        choices: Sequence[Choice],
        name: str = "space",
        encoder: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> None:
        """``encoder`` maps the index genome (see ``to_indices``) to extra domain features.

        A space that knows what its choices build (which edges of a cell are dead, how deep
        a stage is) can expose that to predictors without the searcher knowing anything.
        """
        self.name = name
        self.encoder = encoder
        self.choices: tuple[Choice, ...] = tuple(choices)
        self.names = tuple(c.name for c in self.choices)
        if len(set(self.names)) != len(self.names):
            raise HwnasError(f"space {name!r} repeats a choice name")
        seen: set[str] = set()
        for c in self.choices:
            if c.condition is not None and c.condition.parent not in seen:
                raise HwnasError(
                    f"choice {c.name!r} depends on {c.condition.parent!r}, "
                    "which must be declared before it"
                )
            seen.add(c.name)
        self._by_name = {c.name: c for c in self.choices}
        offsets = np.cumsum([0] + [len(c.options) for c in self.choices])
        self._onehot_offsets = offsets[:-1]
        self.n_features = int(offsets[-1])

    @classmethod
    def from_options(cls, options: Mapping[str, Sequence[Value]], name: str = "space") -> Space:
        """A space from ``{"width": [16, 32, 64], "op": ["conv", "mlp"]}``: numbers in
        increasing order are ordinal (mutation steps to a neighbour), anything else is
        categorical."""
        choices = []
        for choice, values in options.items():
            values = list(values) if isinstance(values, Sequence) else values
            if not isinstance(values, list) or not values:
                raise HwnasError(f"choice {choice!r}: options must be a non-empty list")
            numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
            ordered = numbers and all(a < b for a, b in zip(values, values[1:], strict=False))
            choices.append((ordinal if ordered else categorical)(choice, values))
        return cls(choices, name)

    # -- construction and canonical form -------------------------------------------------
    def make(self, assignment: Mapping[str, Value | None]) -> Arch:
        """Build a canonical arch from a name->value mapping; inactive choices become ``None``.

        Values given for inactive choices are dropped; an active choice left out is an error.
        """
        unknown = set(assignment) - set(self.names)
        if unknown:
            raise HwnasError(f"space {self.name!r} has no choice {sorted(unknown)[0]!r}")
        values: dict[str, Value | None] = {}
        for c in self.choices:
            if c.condition is not None and not c.condition.holds(values):
                values[c.name] = None
                continue
            if assignment.get(c.name) is None:
                raise HwnasError(f"space {self.name!r}: active choice {c.name!r} has no value")
            values[c.name] = c.options[c.index(assignment[c.name])]  # 3.0 and 3 -> one key
        return Arch(self.names, tuple(values[n] for n in self.names))

    def sample(self, rng: np.random.Generator) -> Arch:
        return self._complete({}, rng)

    def _complete(self, partial: Mapping[str, Value | None], rng: np.random.Generator) -> Arch:
        """Keep the given values where still active; draw the active choices left unset."""
        values: dict[str, Value | None] = {}
        for c in self.choices:
            if c.condition is not None and not c.condition.holds(values):
                values[c.name] = None
            elif partial.get(c.name) is not None:
                values[c.name] = partial[c.name]
            else:
                values[c.name] = c.options[rng.integers(len(c.options))]
        return Arch(self.names, tuple(values[n] for n in self.names))

    def mutate(self, arch: Arch, rng: np.random.Generator, rate: float | None = None) -> Arch:
        """Change each active choice with probability ``rate`` (default 1/active); at least one.

        Ordinal choices step to an adjacent value, so a mutation is a small move in an ordered
        dimension rather than a jump across it.
        """
        values = arch.to_dict()
        active = [c for c in self.choices if values[c.name] is not None and len(c.options) > 1]
        if not active:
            return arch
        p = rate if rate is not None else 1.0 / len(active)
        picked = [c for c in active if rng.random() < p] or [active[rng.integers(len(active))]]
        for c in picked:
            values[c.name] = self._other_value(c, values[c.name], rng)
        return self._complete(values, rng)

    @staticmethod
    def _other_value(choice: Choice, current: Value, rng: np.random.Generator) -> Value:
        i = choice.index(current)
        if choice.ordinal:
            steps = [j for j in (i - 1, i + 1) if 0 <= j < len(choice.options)]
            return choice.options[steps[rng.integers(len(steps))]]
        j = rng.integers(len(choice.options) - 1)
        return choice.options[j + (j >= i)]

    def crossover(self, a: Arch, b: Arch, rng: np.random.Generator) -> Arch:
        """Uniform crossover; a choice that becomes active takes the parent's value that has it."""
        da, db = a.to_dict(), b.to_dict()
        child: dict[str, Value | None] = {}
        for n in self.names:
            first, second = (da[n], db[n]) if rng.random() < 0.5 else (db[n], da[n])
            child[n] = first if first is not None else second
        return self._complete(child, rng)

    def neighbours(self, arch: Arch) -> list[Arch]:
        """Every arch one step away: one categorical choice changed, or one ordinal step."""
        values = arch.to_dict()
        out: dict[str, Arch] = {}
        for c in self.choices:
            v = values[c.name]
            if v is None:
                continue
            i = c.index(v)
            others = (
                [j for j in (i - 1, i + 1) if 0 <= j < len(c.options)]
                if c.ordinal
                else [j for j in range(len(c.options)) if j != i]
            )
            for j in others:
                changed = dict(values, **{c.name: c.options[j]})
                nb = self._complete_deterministic(changed)
                if nb.key != arch.key:
                    out.setdefault(nb.key, nb)
        return list(out.values())

    def _complete_deterministic(self, partial: Mapping[str, Value | None]) -> Arch:
        """Like ``_complete`` but newly active choices take their first option (reproducible)."""
        values: dict[str, Value | None] = {}
        for c in self.choices:
            if c.condition is not None and not c.condition.holds(values):
                values[c.name] = None
            else:
                given = partial.get(c.name)
                values[c.name] = given if given is not None else c.options[0]
        return Arch(self.names, tuple(values[n] for n in self.names))

    def corners(self) -> list[Arch]:
        """The smallest and largest archs along the ordinal choices (categorical ones at their
        first option): the two ends of most cost/quality trade-offs. Empty without ordinals."""
        if not any(c.ordinal for c in self.choices):
            return []
        low = {c.name: c.options[0] for c in self.choices}
        high = {c.name: c.options[-1] if c.ordinal else c.options[0] for c in self.choices}
        return list({a.key: a for a in (self.make(low), self.make(high))}.values())

    # -- numeric views ------------------------------------------------------------------
    def to_indices(self, archs: Sequence[Arch]) -> np.ndarray:
        """Option index per choice, -1 where inactive: the genome that searchers operate on."""
        out = np.full((len(archs), len(self.choices)), -1, dtype=np.int64)
        for r, arch in enumerate(archs):
            for k, (c, v) in enumerate(zip(self.choices, arch.values, strict=True)):
                if v is not None:
                    out[r, k] = c.index(v)
        return out

    def from_indices(self, rows: np.ndarray) -> list[Arch]:
        """Inverse of ``to_indices``; indices of inactive choices are ignored (canonicalised)."""
        archs = []
        for row in np.asarray(rows, dtype=np.int64).reshape(-1, len(self.choices)):
            values: dict[str, Value | None] = {}
            for c, i in zip(self.choices, row, strict=True):
                if c.condition is not None and not c.condition.holds(values):
                    values[c.name] = None
                else:
                    values[c.name] = c.options[int(np.clip(i, 0, len(c.options) - 1))]
            archs.append(Arch(self.names, tuple(values[n] for n in self.names)))
        return archs

    def features(self, archs: Sequence[Arch]) -> np.ndarray:
        """Numeric encoding for predictors: one-hot per choice (all zero when inactive).

        Ordinal choices also get their position scaled to [0, 1] so linear models see order.
        """
        idx = self.to_indices(archs)
        onehot = np.zeros((len(archs), self.n_features))
        rows = np.arange(len(archs))
        for k, off in enumerate(self._onehot_offsets):
            active = idx[:, k] >= 0
            onehot[rows[active], off + idx[active, k]] = 1.0
        ordinal_cols = [
            np.where(idx[:, k] >= 0, idx[:, k] / max(len(c.options) - 1, 1), 0.0)
            for k, c in enumerate(self.choices)
            if c.ordinal
        ]
        extra = [self.encoder(idx)] if self.encoder is not None else []
        return np.column_stack([onehot, *ordinal_cols, *extra])

    # -- size and enumeration ------------------------------------------------------------
    def size(self) -> int:
        """Number of distinct canonical archs, branching only on choices that others depend on."""
        parents = {c.condition.parent for c in self.choices if c.condition is not None}

        def rec(k: int, assignment: dict[str, Value | None]) -> int:
            if k == len(self.choices):
                return 1
            c = self.choices[k]
            if c.condition is not None and not c.condition.holds(assignment):
                return rec(k + 1, {**assignment, c.name: None})
            if c.name not in parents:
                return len(c.options) * rec(k + 1, assignment)
            return sum(rec(k + 1, {**assignment, c.name: o}) for o in c.options)

        return rec(0, {})

    def _enumerate_values(self) -> Iterator[tuple[Value | None, ...]]:
        def rec(k: int, values: list[Value | None]) -> Iterator[tuple[Value | None, ...]]:
            if k == len(self.choices):
                yield tuple(values)
                return
            c = self.choices[k]
            assignment = dict(zip(self.names[:k], values, strict=True))
            if c.condition is not None and not c.condition.holds(assignment):
                yield from rec(k + 1, [*values, None])
            else:
                for o in c.options:
                    yield from rec(k + 1, [*values, o])

        yield from rec(0, [])

    def enumerate(self, limit: int | None = None) -> list[Arch]:
        """All archs of the space, for spaces small enough to screen exhaustively."""
        out = []
        for values in self._enumerate_values():
            out.append(Arch(self.names, values))
            if limit is not None and len(out) > limit:
                raise HwnasError(f"space {self.name!r} has more than {limit} archs")
        return out

    def describe(self) -> dict[str, Any]:
        """JSON description, stored with runs so a resume against another space is refused."""
        return {
            "name": self.name,
            "choices": [
                {
                    "name": c.name,
                    "options": list(c.options),
                    "ordinal": c.ordinal,
                    **(
                        {"when": c.condition.parent, "in": sorted(c.condition.values, key=str)}
                        if c.condition
                        else {}
                    ),
                }
                for c in self.choices
            ],
        }
