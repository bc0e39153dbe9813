"""What a condition kind is, and the registry that finds it (the pattern of :mod:`journeymap.steps.base`).

A condition kind is one module of :mod:`audiences.conditions`: its pydantic model, and one
:class:`ConditionKind` registered at import, which says everything else about it::

    ConditionKind.model       the condition's model; its field named like the kind is the YAML key (``trait:``)
    .children(c)              the conditions inside it (all, any, not), with their paths
    .check(c, scope, path)    problems of meaning only this kind knows (a segment that does not exist)
    .events/.traits/.segments/.lists/.consent/.changes_with_time
                              what membership depends on: which events and traits re-check a customer, which
                              segments refresh on the schedule, the order segments refresh in
    .sql(c, query)            the condition as a SQL predicate on one customer (SQLAlchemy Core)

The model and the dependency hooks are pure functions of data. ``sql`` builds an expression and runs nothing:
:mod:`audiences.membership` runs it, set-based, for every customer at once or for a few.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Generic, TypeVar

from pydantic import ConfigDict
from sqlalchemy import Table
from sqlalchemy.sql.elements import ColumnElement

from journeymap.fields import FrozenModel, KindUnion


class ConditionModel(FrozenModel):
    """What every condition has: nothing but its kind's own field (and that kind's options).

    Its schema is built at first use, not at class creation: the combinators (``all``, ``any``, ``not``) hold
    conditions of every kind, including kinds registered after them.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


if TYPE_CHECKING:
    Condition = ConditionModel
else:
    Condition = Annotated[
        ConditionModel,
        KindUnion(
            lambda: [(kind.name, kind.model) for kind in kinds()],
            error_type="condition_kind",
            message=lambda names: "a condition needs exactly one of: " + ", ".join(names),
        ),
    ]
"""A condition of one of the kinds in :mod:`audiences.conditions`; ``kind_of(condition)`` gives its kind."""


@dataclass(frozen=True)
class Scope:
    """What a condition is checked against: the segments and lists it may name."""

    segments: frozenset[str]
    lists: frozenset[str] | None = None
    """Static lists imported so far, when known (``journeys validate`` does not read the database)."""
    scores: Mapping[str, Any] = field(default_factory=dict)
    """The computed traits defined beside the segments (``audiences.scores``), by name."""


@dataclass(frozen=True)
class Query:
    """Where a condition's SQL sits: the customer row it is about, and the moment it is evaluated at."""

    customer: Table
    """The ``customer`` table (or an alias) in the enclosing query: the predicate is about its row."""
    now: datetime

    def where(self, condition: ConditionModel) -> ColumnElement[bool]:
        """A nested condition's predicate (combinators use this)."""
        return kind_of(condition).sql(condition, self)


C = TypeVar("C", bound=ConditionModel)


class ConditionKind(Generic[C]):
    """One kind of condition. A kind's module subclasses this, sets the class attributes and overrides what
    differs; the defaults describe a leaf that depends on nothing and never changes with time alone."""

    name: ClassVar[str]
    model: type[C]
    summary: ClassVar[str] = ""
    """One line for ``journeys segments`` and the error listing the kinds."""

    def children(self, condition: C) -> list[tuple[str, ConditionModel]]:
        return []

    def check(self, condition: C, scope: Scope, path: str) -> list[tuple[str, str]]:
        """(path, message) for each problem of meaning; ``path`` locates the condition (``where.all[1]``)."""
        return []

    def events(self, condition: C) -> set[str]:
        """Event types whose arrival may change this condition for the customer they are about."""
        return set()

    def traits(self, condition: C) -> set[str]:
        """Traits whose change (an identify) may change this condition."""
        return set()

    def segments(self, condition: C) -> set[str]:
        """Other segments this condition reads: they refresh first, and a cycle is refused."""
        return set()

    def lists(self, condition: C) -> set[str]:
        return set()

    def consent(self, condition: C) -> bool:
        """Whether the condition reads consent (changed by unsubscribes and STOPs, outside the event path)."""
        return False

    def changes_with_time(self, condition: C) -> bool:
        """Whether the condition can flip with no event at all ("no order in 60 days"): the schedule re-checks it."""
        return False

    def describe(self, condition: C) -> str:
        return self.name

    def sql(self, condition: C, query: Query) -> ColumnElement[bool]:
        raise NotImplementedError(f"condition kind {self.name!r} has no SQL")


class ListKind(ConditionKind[C]):
    """A combinator over a list of conditions (``all``, ``any``): its kind sets ``join`` (``and_``, ``or_``)."""

    join: Callable[..., ColumnElement[bool]]

    def _items(self, condition: C) -> list[ConditionModel]:
        items: list[ConditionModel] = getattr(condition, self.name)
        return items

    def children(self, condition: C) -> list[tuple[str, ConditionModel]]:
        return [(f"{self.name}[{index}]", child) for index, child in enumerate(self._items(condition))]

    def sql(self, condition: C, query: Query) -> ColumnElement[bool]:
        return self.join(*(query.where(child) for child in self._items(condition)))


_KINDS: dict[str, ConditionKind[Any]] = {}
_BY_MODEL: dict[type[ConditionModel], ConditionKind[Any]] = {}

K = TypeVar("K", bound=ConditionKind[Any])


def register(kind: K) -> K:
    """Add a condition kind; segments may use it from now on."""
    if kind.name in _KINDS:
        raise ValueError(f"condition kind {kind.name!r} is registered twice")
    if field_of(kind) is None:
        raise ValueError(f"condition kind {kind.name!r}: {kind.model.__name__} has no field {kind.name!r}")
    _KINDS[kind.name] = kind
    _BY_MODEL[kind.model] = kind
    return kind


def field_of(kind: ConditionKind[Any]) -> str | None:
    """The model's field holding the kind's settings: named like the kind, or aliased so (``not``)."""
    for name, info in kind.model.model_fields.items():
        if kind.name in (name, info.alias):
            return str(name)
    return None


def kinds() -> list[ConditionKind[Any]]:
    """Every registered kind, in registration order."""
    return list(_KINDS.values())


def kind_of(condition: ConditionModel) -> ConditionKind[Any]:
    return _BY_MODEL[type(condition)]


def walk(condition: ConditionModel, path: str = "where") -> list[tuple[str, ConditionModel]]:
    """The condition and every condition inside it, with their paths, depth first."""
    found = [(path, condition)]
    for child_path, child in kind_of(condition).children(condition):
        found += walk(child, f"{path}.{child_path}")
    return found
