"""The board wire protocol (PROTOCOL.md, version 1): no Django, no Channels.

Read in this order: `messages` (types, limits, close codes, the error
hierarchy), `validation` (client frames, in the protocol's check order) and
`frames` (every frame the server sends, and the one encoder). The names most
callers need are re-exported here.
"""

from .frames import FRAME_BUDGET, encode
from .messages import *  # noqa: F403
from .messages import Limits, ProtocolError
from .validation import (
    CID_RE,
    COLOR_RE,
    COORD_LIMIT,
    ID_RE,
    KIND_FIELDS,
    KIND_STYLE,
    KINDS,
    STYLE_FIELDS,
    TEXT_MAX_CHARS,
    check_update_for_kind,
    parse_envelope,
    validate,
    validate_element,
)

__all__ = [
    "CID_RE",
    "COLOR_RE",
    "COORD_LIMIT",
    "FRAME_BUDGET",
    "ID_RE",
    "KINDS",
    "KIND_FIELDS",
    "KIND_STYLE",
    "STYLE_FIELDS",
    "TEXT_MAX_CHARS",
    "Limits",
    "ProtocolError",
    "check_update_for_kind",
    "encode",
    "parse_envelope",
    "validate",
    "validate_element",
]
