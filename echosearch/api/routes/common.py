"""What the routers share: parameter types, filters from ``where``, lookups that answer 404."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, TypeVar

from fastapi import Query

from echosearch.api.errors import bad_parameter, not_found
from echosearch.errors import UsageError
from echosearch.search import Engine, parse_where
from echosearch.store.queries import VideoFilter

T = TypeVar("T")

K = Annotated[int, Query(ge=1, le=1000, description="Results per page.")]
Offset = Annotated[int, Query(ge=0, le=100_000, description="Results to skip (paging).")]
Where = Annotated[
    list[str] | None,
    Query(
        max_length=50,
        description="Filter, repeatable, as the CLI's --where: 'ef < 40', 'pacemaker = yes', 'view = A4C', "
        "'date >= 2021-01-01', 'manufacturer = GE', 'study = UID', 'mrn = 123'.",
    ),
]


def filters(engine: Engine, where: list[str] | None) -> VideoFilter | None:
    """``where`` conditions as a filter; one the index cannot read is a 400 naming ``where``."""
    if not where:
        return None
    try:
        return parse_where(where, engine)
    except UsageError as exc:
        raise bad_parameter("where", str(exc)) from None


def found(lookup: Callable[[], T]) -> T:
    """Run a lookup; "no such study/clip" from the Engine is a 404."""
    try:
        return lookup()
    except UsageError as exc:
        raise not_found(str(exc)) from None
