"""Export and import of boards: one documented, versioned JSON format.

    {"format": "whiteboard-board", "version": 1,
     "board": {"title": "..."},
     "elements": [...the live elements, in stacking order, as a snapshot has them...],
     "history": [...optional: the board's ops, oldest first...],
     "assets": {...optional: "<id>": {"type": "image/png", "data": "<base64>"}}}

Each op of `history` is {"seq", "last_seq", "kind", "cid", "by", "sid", "time",
"entries"}, `entries` being the op entries clients were sent. `assets` holds
the file of every upload an image element (or, with the history, an add of
one) names, so that a board travels with its pictures.

An import is checked whole before anything is written, by the protocol's own
rules (an element must pass what an `add` of it would, ids are unique, the
board's limits hold), and the history, when there is one, must replay to
exactly the elements given. Every image an element names must be in `assets`,
and each of those files passes what an upload would (assets.clean: its type
recognised by content, re-encoded without metadata, the byte and pixel limits),
then is stored under a new id, since ids are unique on the server. A file that
fails any check is refused with a message saying what is wrong, and nothing is
stored.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from . import protocol as p
from .identity import actor_key, user_display_name
from .models import Asset, Board, Checkpoint, Element, Op, Thumbnail
from .protocol.frames import encode, size
from .timeline import State

FORMAT = "whiteboard-board"
VERSION = 1
ENTRY_OPS = {"add", "update", "delete", "clear"}
MAX_TITLE = 200


class ImportRefused(Exception):
    """The file is not a board this server can take; `message` says why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# -- export -------------------------------------------------------------------


def export_board(board: Board, *, history: bool = False) -> dict[str, Any]:
    """The board as the format above; with `history`, its log as well."""
    board.refresh_from_db(fields=["seq", "title", "history_from"])
    live = Element.objects.live().filter(board=board).order_by("z")
    elements = [
        {**orjson.loads(body), "v": v} for body, v in live.values_list("body", "v")
    ]
    document: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "board": {"title": board.title},
        "elements": elements,
    }
    if history:
        if board.history_from:
            raise ImportRefused(
                "The history of this board before seq "
                f"{board.history_from} was dropped: export it without history."
            )
        document["history"] = [
            {
                "seq": op.seq,
                "last_seq": op.last_seq,
                "kind": op.kind,
                "cid": op.cid,
                "by": op.by,
                "sid": op.sid,
                "time": op.created_at.isoformat(),
                "entries": orjson.loads(op.entries),
            }
            for op in Op.objects.filter(board=board).order_by("seq").iterator()
        ]
    named = named_assets(elements, document.get("history"))
    if named:
        document["assets"] = exported_assets(board, named)
    return document


def named_assets(
    elements: list[dict[str, Any]], history: list[dict[str, Any]] | None
) -> list[str]:
    """The upload ids that image elements name, and adds of the history, in
    the order they are first named."""
    keys: dict[str, None] = {}
    for element in elements:
        if element.get("kind") == "image":
            keys[element["asset"]] = None
    for op in history or ():
        for entry in op["entries"]:
            added = entry.get("element") if isinstance(entry, dict) else None
            if isinstance(added, dict) and added.get("kind") == "image":
                keys[added["asset"]] = None
    return list(keys)


def exported_assets(board: Board, keys: list[str]) -> dict[str, dict[str, str]]:
    """The named uploads' files, base64-encoded. One that is gone (its file
    lost from the storage) is left out: the import of the file then says
    which image is missing."""
    out: dict[str, dict[str, str]] = {}
    for asset in Asset.objects.filter(board=board, key__in=keys).order_by("pk"):
        try:
            with asset.file.open("rb") as stored:
                data = stored.read()
        except OSError:
            continue
        out[asset.key] = {
            "type": asset.content_type,
            "data": base64.b64encode(data).decode("ascii"),
        }
    return out


def export_bytes(board: Board, *, history: bool = False) -> bytes:
    return orjson.dumps(
        export_board(board, history=history), option=orjson.OPT_INDENT_2
    )


# -- checking a file -----------------------------------------------------------------


@dataclass
class Checked:
    """A file that passed every check: what an import writes."""

    title: str
    elements: list[dict[str, Any]]  # bodies, without v, in stacking order
    history: list[dict[str, Any]] | None
    # The uploads the elements name, cleaned as uploads are, by their id in
    # the file (import_board stores them under new ones).
    assets: dict[str, Any] = field(default_factory=dict)  # id -> assets.Cleaned


def read(data: bytes | str, limits: p.Limits) -> Checked:
    """Parse and check a file; ImportRefused says what is wrong."""
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ImportRefused(f"The file is not JSON: {exc}.") from exc
    return check(document, limits)


def check(document: Any, limits: p.Limits) -> Checked:
    if not isinstance(document, dict):
        raise ImportRefused("The file must hold one JSON object.")
    if document.get("format") != FORMAT:
        raise ImportRefused(f'This is not a board file: "format" must be "{FORMAT}".')
    if document.get("version") != VERSION:
        raise ImportRefused(
            f"Board files of version {document.get('version')!r} are not known "
            f"here: this server reads version {VERSION}."
        )
    known = {"format", "version", "board", "elements", "history", "assets"}
    unknown = set(document) - known
    if unknown:
        raise ImportRefused(
            f"Unknown fields in the file: {', '.join(sorted(unknown))}."
        )
    board = document.get("board")
    if not isinstance(board, dict) or not isinstance(board.get("title"), str):
        raise ImportRefused('"board" must be an object with a "title" string.')
    title = board["title"].strip()[:MAX_TITLE] or "Imported board"
    raw = document.get("elements")
    if not isinstance(raw, list):
        raise ImportRefused('"elements" must be a list.')
    if len(raw) > limits.max_elements:
        raise ImportRefused(
            f"The file holds {len(raw)} elements; a board may hold "
            f"{limits.max_elements}."
        )
    elements = [checked_element(item, n, limits) for n, item in enumerate(raw)]
    counts = Counter(e["id"] for e in elements)
    repeated = sorted(i for i, n in counts.items() if n > 1)
    if repeated:
        raise ImportRefused(f"Element ids appear twice: {', '.join(repeated[:5])}.")
    total = sum(size(encode(e)) for e in elements)
    if total > limits.max_board_bytes:
        raise ImportRefused(
            f"The elements take {total} bytes; a board may hold "
            f"{limits.max_board_bytes}."
        )
    history = None
    if "history" in document:
        history = checked_history(document["history"], elements, limits)
    assets = checked_assets(
        document.get("assets", {}), named_assets(elements, history), limits
    )
    total += sum(len(cleaned.data) for cleaned in assets.values())
    if total > limits.max_board_bytes:
        raise ImportRefused(
            f"The elements and images take {total} bytes; a board may hold "
            f"{limits.max_board_bytes}."
        )
    return Checked(title, elements, history, assets)


def checked_assets(raw: Any, named: list[str], limits: p.Limits) -> dict[str, Any]:
    """Every image the elements name, from the file's `assets`, checked and
    cleaned as an upload is; nothing else may be there."""
    from . import assets
    from .history_views import Refused

    if not isinstance(raw, dict):
        raise ImportRefused('"assets" must be an object of images by their id.')
    missing = [key for key in named if key not in raw]
    if missing:
        raise ImportRefused(
            f"The image {missing[0]!r} is named by an element, but its file is "
            'not in "assets".'
        )
    extra = sorted(set(raw) - set(named))
    if extra:
        raise ImportRefused(
            f'The image {extra[0]!r} is in "assets" but nothing names it.'
        )
    cleaned = {}
    for key in named:
        item = raw[key]
        data = item.get("data") if isinstance(item, dict) else None
        if not isinstance(data, str):
            raise ImportRefused(f'Image {key!r}: "data" must be a base64 string.')
        if len(data) > (limits.max_asset_bytes + 2) // 3 * 4:
            raise ImportRefused(
                f"Image {key!r} is larger than the {limits.max_asset_bytes} bytes "
                "an upload may have."
            )
        try:
            content = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ImportRefused(f'Image {key!r}: "data" is not base64.') from exc
        try:
            # In the image worker, as uploads are: a large image's decoding
            # never takes this process's memory.
            cleaned[key] = assets.clean_in_worker_sync(content, limits.max_asset_pixels)
        except Refused as exc:
            raise ImportRefused(f"Image {key!r}: {exc.message}") from exc
    return cleaned


def checked_element(item: Any, n: int, limits: p.Limits) -> dict[str, Any]:
    """An element of the file, checked as an `add` of it would be: returns
    its body (the protocol's fields, with `by`, without `v`)."""
    where = f"Element {n + 1}"
    if not isinstance(item, dict):
        raise ImportRefused(f"{where} is not an object.")
    by = item.get("by", "")
    if not isinstance(by, str) or len(by) > 150:
        raise ImportRefused(f'{where}: "by" must be a name of at most 150 characters.')
    fields = {k: v for k, v in item.items() if k not in ("v", "by")}
    envelope_text = orjson.dumps(
        {"type": "add", "cid": "import-check", "element": fields}
    ).decode()
    try:
        envelope = p.parse_envelope(envelope_text)
        op = p.validate(envelope, limits)
    except p.ProtocolError as exc:
        name = item.get("id") if isinstance(item.get("id"), str) else None
        label = f"{where} ({name!r})" if name else where
        raise ImportRefused(f"{label}: {exc.message}") from exc
    assert isinstance(op, p.AddOp)
    return {**op.element, "by": by or "Imported"}


def checked_history(
    raw: Any, elements: list[dict[str, Any]], limits: p.Limits
) -> list[dict[str, Any]]:
    """The ops of the file, checked: consecutive seqs from 1, entries of the
    protocol's kinds whose elements pass as adds, and a replay that ends at
    exactly `elements`."""
    if not isinstance(raw, list):
        raise ImportRefused('"history" must be a list of ops.')
    state = State()
    expected = 1
    cids = set()
    ops = []
    for n, op in enumerate(raw):
        where = f"History op {n + 1}"
        if not isinstance(op, dict) or not isinstance(op.get("entries"), list):
            raise ImportRefused(f'{where} must be an object with an "entries" list.')
        cid = op.get("cid")
        if not isinstance(cid, str) or not p.CID_RE.fullmatch(cid):
            raise ImportRefused(f"{where}: its cid is missing or malformed.")
        if cid in cids:
            raise ImportRefused(f"{where}: cid {cid!r} appears twice.")
        cids.add(cid)
        if not op["entries"]:
            raise ImportRefused(f"{where} has no entries.")
        for entry in op["entries"]:
            entry = checked_entry(entry, expected, where, limits, state)
            state.apply(entry)
            expected += 1
        ops.append(op)
    final = [without(e, "v") for e in state.live()]
    if [without(e, "by") for e in final] != [without(e, "by") for e in elements]:
        raise ImportRefused(
            "The history does not lead to the elements of the file: it was "
            "changed, or belongs to another board."
        )
    return ops


def checked_entry(
    entry: Any, seq: int, where: str, limits: p.Limits, state: State
) -> dict[str, Any]:
    """One op entry of the history, checked by the rules of the op it is,
    against the board as the entries before it left it."""
    if not isinstance(entry, dict) or entry.get("op") not in ENTRY_OPS:
        raise ImportRefused(
            f"{where}: an entry is not an add, update, delete or clear."
        )
    if entry.get("seq") != seq:
        found = entry.get("seq")
        raise ImportRefused(f"{where}: seq {seq} was expected, {found!r} found.")
    if entry["op"] == "add":
        body = checked_element(entry.get("element"), seq - 1, limits)
        return {**entry, "element": {**body, "v": seq}}
    if entry["op"] == "update":
        return checked_update(entry, where, limits, state)
    if entry["op"] == "delete" and not (
        isinstance(entry.get("ids"), list)
        and all(isinstance(i, str) for i in entry["ids"])
    ):
        raise ImportRefused(f'{where}: a delete needs a list of "ids".')
    return entry


def checked_update(
    entry: dict[str, Any], where: str, limits: p.Limits, state: State
) -> dict[str, Any]:
    """An update entry, checked as a client's `update` of it would be."""
    frame: dict[str, Any] = {"type": "update", "cid": "import-check"}
    frame |= {"id": entry.get("id"), "set": entry.get("set")}
    try:
        op = p.validate(p.parse_envelope(orjson.dumps(frame).decode()), limits)
        assert isinstance(op, p.UpdateOp)
        known = state.elements.get(op.id)
        if known is None or known[1] is None:
            raise p.NotFound(f"there is no element {op.id!r} to update.")
        p.check_update_for_kind(known[1]["kind"], op.set)
    except p.ProtocolError as exc:
        raise ImportRefused(f"{where}: {exc.message}") from exc
    return {**entry, "set": op.set}


def without(element: dict[str, Any], name: str) -> dict[str, Any]:
    return {k: v for k, v in element.items() if k != name}


# -- writing -----------------------------------------------------------------------


def import_board(
    checked: Checked,
    *,
    owner: Any = None,
    slug: str | None = None,
    replace: bool = False,
    is_public: bool = False,
) -> Board:
    """A new board (or `slug`'s board, replaced) holding the checked file,
    its images stored as uploads of the board."""
    written: list[Asset] = []
    try:
        return write_board(checked, owner, slug, replace, is_public, written)
    except BaseException:
        # The rows rolled back: their files go too.
        for asset in written:
            asset.file.storage.delete(asset.file.name)
        raise


def write_board(
    checked: Checked,
    owner: Any,
    slug: str | None,
    replace: bool,
    is_public: bool,
    written: list[Asset],
) -> Board:
    from . import services  # services imports the commit machinery

    with transaction.atomic():
        board = (
            Board.objects.select_for_update().filter(slug=slug).first()
            if slug
            else None
        )
        if board is not None and not replace:
            raise ImportRefused(f"A board {slug!r} exists already.")
        if board is None:
            board = services.board_create(
                title=checked.title, slug=slug, owner=owner, is_public=is_public
            )
        else:
            Op.objects.filter(board=board).delete()
            Element.objects.filter(board=board).delete()
            Checkpoint.objects.filter(board=board).delete()
            Thumbnail.objects.filter(board=board).delete()
            # Their files go once this commits (models.asset_file_delete).
            Asset.objects.filter(board=board).delete()
            board.title = checked.title
            services.board_new_epoch(board=board)
        keys = store_assets(board, checked.assets, owner, written)
        if checked.history is None:
            write_as_one_op(board, rekeyed(checked.elements, keys), owner)
        else:
            write_history(board, rekeyed_history(checked.history, keys))
        live = Element.objects.live().filter(board=board)
        board.live_elements = live.count()
        board.live_bytes = sum(size(b) for b in live.values_list("body", flat=True))
        board.asset_bytes = sum(
            len(cleaned.data) for cleaned in checked.assets.values()
        )
        board.history_from = 0
        board.save()
    return board


def store_assets(
    board: Board, cleaned: dict[str, Any], owner: Any, written: list[Asset]
) -> dict[str, str]:
    """The file's images as uploads of `board`, each under a new id; the new
    ids by the file's. Each stored file is added to `written`, for the caller
    to remove if its transaction fails."""
    from . import assets

    keys: dict[str, str] = {}
    user = owner if getattr(owner, "is_authenticated", False) else None
    for old, image in cleaned.items():
        asset = assets.stored_file(board, image, user, "import")
        written.append(asset)
        asset.save()
        keys[old] = asset.key
    return keys


def rekeyed(
    elements: list[dict[str, Any]], keys: dict[str, str]
) -> list[dict[str, Any]]:
    """Elements naming the stored uploads' new ids."""
    return [
        {**e, "asset": keys[e["asset"]]} if e.get("kind") == "image" else e
        for e in elements
    ]


def rekeyed_history(
    history: list[dict[str, Any]], keys: dict[str, str]
) -> list[dict[str, Any]]:
    """The history's adds of images naming the stored uploads' new ids (an
    update never changes an image's upload)."""
    if not keys:
        return history
    out = []
    for op in history:
        entries = []
        for entry in op["entries"]:
            element = entry.get("element")
            if entry["op"] == "add" and element.get("kind") == "image":
                entry = {
                    **entry,
                    "element": {**element, "asset": keys[element["asset"]]},
                }
            entries.append(entry)
        out.append({**op, "entries": entries})
    return out


def write_as_one_op(board: Board, elements: list[dict[str, Any]], owner: Any) -> None:
    """The elements as one op by the importer: an add per element, seqs 1..N."""
    by = user_display_name(owner) if owner is not None else "Import"
    cid = f"import-{uuid.uuid4().hex}"
    entries, rows = [], []
    for seq, body in enumerate(elements, start=1):
        entries.append(
            {
                "op": "add",
                "seq": seq,
                "cid": cid,
                "sid": None,
                "by": by,
                "element": {**body, "v": seq},
            }
        )
        rows.append(element_row(board, body, z=seq, v=seq))
    Element.objects.bulk_create(rows, batch_size=1000)
    if entries:
        Op.objects.create(
            board=board,
            seq=1,
            last_seq=len(entries),
            cid=cid,
            kind="import",
            author=owner,
            by=by,
            sid=None,
            actor=actor_key(user_id=owner.pk) if owner is not None else "import",
            entries=encode(entries),
        )
    board.seq = len(entries)


def write_history(board: Board, history: list[dict[str, Any]]) -> None:
    """The file's ops as the board's log, and its element rows (tombstones
    too, so that ids stay taken) as the replay leaves them."""
    state = State()
    seq = 0
    rows = []
    now = timezone.now()
    # The last body of each element: a deleted one keeps its row (its id stays
    # taken, and a restore can bring it back), with what it held.
    last: dict[str, dict[str, Any]] = {}
    for op in history:
        entries = op["entries"]
        for entry in entries:
            state.apply(entry)
            for element_id in entry_ids(entry, state):
                element = state.elements[element_id][1]
                if element is not None:
                    last[element_id] = dict(element)
        seq = entries[-1]["seq"]
        created = (
            parse_datetime(op["time"]) if isinstance(op.get("time"), str) else None
        )
        rows.append(
            Op(
                board=board,
                seq=entries[0]["seq"],
                last_seq=seq,
                cid=op["cid"],
                kind=str(op.get("kind") or entries[0]["op"])[:16],
                by=str(op.get("by") or "")[:150],
                sid=op.get("sid") if isinstance(op.get("sid"), str) else None,
                actor="import",
                entries=encode(entries),
                created_at=created if created is not None else now,
            )
        )
    times = [row.created_at for row in rows]
    Op.objects.bulk_create(rows, batch_size=500)
    # bulk_create stamps auto_now_add fields: the file's times are written after.
    for row, moment in zip(rows, times, strict=True):
        row.created_at = moment
    Op.objects.bulk_update(rows, ["created_at"], batch_size=500)
    elements = []
    for element_id, (z, element) in state.elements.items():
        if element is None:
            row = element_row(board, without(last[element_id], "v"), z=z, v=seq)
            row.deleted = True
        else:
            row = element_row(board, without(element, "v"), z=z, v=element["v"])
        elements.append(row)
    Element.objects.bulk_create(elements, batch_size=1000)
    board.seq = seq


def entry_ids(entry: dict[str, Any], state: State) -> list[str]:
    """The elements an add or update entry leaves changed (and alive)."""
    if entry["op"] == "add":
        return [entry["element"]["id"]]
    if entry["op"] == "update" and entry["id"] in state.elements:
        return [entry["id"]]
    return []


def element_row(board: Board, body: dict[str, Any], *, z: int, v: int) -> Element:
    return Element(
        board=board,
        element_id=body["id"],
        kind=body["kind"],
        z=z,
        v=v,
        deleted=False,
        body=encode(body),
    )
