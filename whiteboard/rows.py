"""The rows a batch of ops writes, as plain objects, and the raw SQL that writes them.

A commit never builds a model instance for the rows it reads or writes:
`Model.__init__` and its pre_init/post_init signals were over half of the CPU
of applying an `add` (py-spy on the bench's `many` scenario, issue 11), and the
ORM's per-row, per-field machinery in `bulk_create` before that was 42 % of a
commit of 50 adds. The rows are already valid, so `ElementRow` and `OpRow` carry
the column values, `insert_elements` and `insert_ops` write them with one
multi-row INSERT per CHUNK rows, whatever the number of boards they belong to,
and `update_elements` writes changed rows back by (board, element id), the
table's unique key, with `executemany` of one plain UPDATE (psycopg pipelines
it; `bulk_update`'s CASE expressions took over a second for an undo that
restores 1,000 elements).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from django.db import connections, router
from django.utils import timezone

from .models import Element, Op

# Rows per INSERT statement: SQLite allows 32,766 parameters, an op row has 14.
CHUNK = 500


@dataclass(slots=True)
class ElementRow:
    """An element row as a batch reads and changes it (models.Element's columns).

    `stored`: the row is in the database (a change is an UPDATE), rather than
    added by this batch (it is INSERTed once, as it is at the end).
    """

    element_id: str
    kind: str
    z: int
    v: int
    deleted: bool
    body: str
    field_v: str = "{}"
    stored: bool = True


# What `element_rows_of` reads and `insert_elements` writes, in ElementRow's order.
ELEMENT_COLUMNS = ("element_id", "kind", "z", "v", "deleted", "body", "field_v")


@dataclass(slots=True)
class OpRow:
    """A new op row: models.Op's columns but `id`, `board` and `created_at`."""

    seq: int
    last_seq: int
    cid: str
    kind: str
    author_id: int | None
    by: str
    sid: str | None
    actor: str
    entries: str
    undo: str
    history: str
    applied_seq: int | None


OP_COLUMNS = tuple(f.name for f in fields(OpRow))


def element_rows_of(board_ids: Iterable[int], element_ids: list[str]) -> list[tuple]:
    """(board id, ElementRow) of the named elements on these boards (one query)."""
    query = Element.objects.filter(board_id__in=board_ids, element_id__in=element_ids)
    return [
        (values[0], ElementRow(*values[1:]))
        for values in query.values_list("board_id", *ELEMENT_COLUMNS)
    ]


def insert_elements(
    new: list[tuple[int, ElementRow]], *, skip_existing: bool = False
) -> list[int]:
    """Insert (board id, row) pairs, of one board or several; each is then stored.

    With `skip_existing`, a row whose (board, element id) is taken is skipped,
    not an error; the board id of each row inserted is returned.
    """
    inserted = insert(
        Element,
        ("board_id", *ELEMENT_COLUMNS),
        [
            (b, r.element_id, r.kind, r.z, r.v, r.deleted, r.body, r.field_v)
            for b, r in new
        ],
        skip_existing=skip_existing,
    )
    for _, row in new:
        row.stored = True
    return inserted


def update_elements(changed: list[tuple[int, ElementRow]]) -> None:
    """Write back the changing columns of stored rows, as (board id, row) pairs."""
    if not changed:
        return
    connection = connections[router.db_for_write(Element)]
    quote = connection.ops.quote_name
    sql = (
        f"UPDATE {quote(Element._meta.db_table)} SET "
        f"{quote('v')} = %s, {quote('deleted')} = %s, {quote('body')} = %s, "
        f"{quote('field_v')} = %s "
        f"WHERE {quote('board_id')} = %s AND {quote('element_id')} = %s"
    )
    params = [(r.v, r.deleted, r.body, r.field_v, b, r.element_id) for b, r in changed]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)


def insert_ops(
    new: list[tuple[int, OpRow]],
    now: datetime | None = None,
    *,
    skip_existing: bool = False,
) -> list[int]:
    """Insert (board id, row) pairs of new ops, stamped `now`; `skip_existing`
    as in insert_elements (a cid taken on the board)."""
    if not new:
        return []
    connection = connections[router.db_for_write(Op)]
    field = Op._meta.get_field("created_at")
    stamp = field.get_db_prep_save(now or timezone.now(), connection)
    return insert(
        Op,
        ("board_id", *OP_COLUMNS, "created_at"),
        [(b, *(getattr(r, n) for n in OP_COLUMNS), stamp) for b, r in new],
        skip_existing=skip_existing,
    )


def insert(
    model: Any,
    columns: tuple[str, ...],
    values: list[tuple],
    *,
    skip_existing: bool = False,
) -> list[int]:
    """One multi-row INSERT per CHUNK rows; returns the first column's value
    (the board id) of each row inserted.

    With `skip_existing`, rows that would break a unique constraint are skipped
    (ON CONFLICT DO NOTHING, in SQLite and PostgreSQL alike) and only the rows
    inserted come back (RETURNING); otherwise such a row is an IntegrityError.
    """
    if not values:
        return []
    connection = connections[router.db_for_write(model)]
    quote = connection.ops.quote_name
    head = (
        f"INSERT INTO {quote(model._meta.db_table)} "
        f"({', '.join(quote(c) for c in columns)}) VALUES "
    )
    one = "(" + ", ".join(["%s"] * len(columns)) + ")"
    tail = f" ON CONFLICT DO NOTHING RETURNING {quote(columns[0])}"
    inserted: list[int] = []
    with connection.cursor() as cursor:
        for start in range(0, len(values), CHUNK):
            chunk = values[start : start + CHUNK]
            params = [value for row in chunk for value in row]
            rows = ", ".join([one] * len(chunk))
            if not skip_existing:
                cursor.execute(head + rows, params)
                inserted += [row[0] for row in chunk]
                continue
            cursor.execute(head + rows + tail, params)
            inserted += [first for (first,) in cursor.fetchall()]
    return inserted
