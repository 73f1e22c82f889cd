"""One multi-row INSERT for the rows a batch of ops creates, and one prepared
UPDATE run for every row it changes.

`bulk_create` spends most of a commit's CPU on per-row, per-field machinery
(measured with bench/profile.py: 42 % of `ops_commit` for a batch of 50 adds);
the rows a batch writes are plain, already-valid model instances, so this
builds the same INSERT once per model and fills in the values directly. The
primary keys come back with RETURNING, as bulk_create gets them, because a row
added earlier in a batch may be updated later in the same batch.

`bulk_update` is worse: it builds one `CASE WHEN id = ... THEN ...` expression
per row and field, resolved through the ORM's expression machinery; an undo
that restores 1,000 elements spent over a second there (measured with
cProfile: 95 % of the commit), holding the board lock and the committer. The
same rows written by `executemany` of one plain UPDATE take a few milliseconds
(psycopg runs it pipelined).
"""

from django.db import connections, router

CHUNK = 200


def insert_rows(model, rows):
    """Insert `rows` (new instances of `model`), setting their primary keys."""
    if not rows:
        return
    db = router.db_for_write(model)
    connection = connections[db]
    if not connection.features.can_return_rows_from_bulk_insert:
        model.objects.using(db).bulk_create(rows)
        return
    meta = model._meta
    fields = [f for f in meta.concrete_fields if f is not meta.pk]
    quote = connection.ops.quote_name
    head = (
        f"INSERT INTO {quote(meta.db_table)} "
        f"({', '.join(quote(f.column) for f in fields)}) VALUES "
    )
    one = "(" + ", ".join(["%s"] * len(fields)) + ")"
    tail = f" RETURNING {quote(meta.pk.column)}"
    with connection.cursor() as cursor:
        for start in range(0, len(rows), CHUNK):
            chunk = rows[start : start + CHUNK]
            params = [
                f.get_db_prep_save(f.pre_save(row, True), connection)
                for row in chunk
                for f in fields
            ]
            cursor.execute(head + ", ".join([one] * len(chunk)) + tail, params)
            for row, (pk,) in zip(chunk, cursor.fetchall(), strict=True):
                row.pk = pk
                row._state.adding = False
                row._state.db = db


def update_rows(model, rows, field_names):
    """Write these fields of `rows` (saved instances of `model`) back."""
    if not rows:
        return
    db = router.db_for_write(model)
    connection = connections[db]
    meta = model._meta
    fields = [meta.get_field(name) for name in field_names]
    quote = connection.ops.quote_name
    sql = (
        f"UPDATE {quote(meta.db_table)} SET "
        + ", ".join(f"{quote(f.column)} = %s" for f in fields)
        + f" WHERE {quote(meta.pk.column)} = %s"
    )
    params = [
        [f.get_db_prep_save(getattr(row, f.attname), connection) for f in fields]
        + [row.pk]
        for row in rows
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)
