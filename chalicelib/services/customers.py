"""Customer reads for the Balance API (the key's environment scopes them)."""

from __future__ import annotations

from chalicelib.domain.customers import Customer
from chalicelib.domain.errors import ValidationError
from chalicelib.domain.identity import ApiKeyPrincipal
from chalicelib.services.ports import Page, UnitOfWork


def list_customers(
    uow: UnitOfWork,
    principal: ApiKeyPrincipal,
    *,
    limit: int,
    cursor: str | None = None,
    search: str | None = None,
    page: int = 1,
) -> Page[Customer]:
    """Customers ordered by id; ``search`` is an id prefix (a key condition, so it stays cheap).

    A ``cursor`` resumes in one query. A bare ``page`` number walks forward page
    by page, so its cost grows with the page number: clients should follow cursors.
    """
    if search is not None and len(search) > 128:
        raise ValidationError("search must be at most 128 characters", field="search")
    result = uow.customers.list(principal.tenant_id, principal.environment, limit, cursor, prefix=search)
    while cursor is None and result.extra["page"] < page:
        if not result.next_cursor:
            return Page(items=[], next_cursor=None, extra={"page": page})
        result = uow.customers.list(principal.tenant_id, principal.environment, limit, result.next_cursor,
                                    prefix=search)
    return result
