"""What the routers share: parameter types, filters from ``where``, lookups that answer 404."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Query, Request

from echosearch.accounts import Caller
from echosearch.api import shapes
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


@dataclass
class Page:
    """One page of a ranked list: ``k`` results after ``offset``."""

    k: int
    offset: int
    window: int  # how many to ask the Engine for (one more than the page: is there a next one?)

    def of(self, doc: dict[str, Any], caller: Caller | None = None) -> dict[str, Any]:
        """A result document cut to this page (clips shaped for ``caller``)."""
        return shapes.paged(doc, self.k, self.offset, caller)


async def _page(request: Request, k: K = 10, offset: Offset = 0) -> Page:
    window = shapes.page_window(k, offset, request.app.state.api.settings.max_results)  # 400 past the limit
    return Page(k, offset, window)


Paging = Annotated[Page, Depends(_page)]


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
