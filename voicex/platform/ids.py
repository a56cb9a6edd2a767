"""Object ids in URLs and bodies: 24-hex strings outside, ObjectIds inside."""

from __future__ import annotations

from bson import ObjectId
from bson.errors import InvalidId

from voicex.platform.errors import bad_request, not_found


def path_id(value: str, what: str) -> ObjectId:
    """An id from a URL path; anything that is not an ObjectId is simply not found."""
    try:
        return ObjectId(value)
    except (InvalidId, TypeError):
        raise not_found(what) from None


def body_id(value: str, field: str) -> ObjectId:
    """An id from a request body; a malformed one is a 400 naming the field."""
    try:
        return ObjectId(value)
    except (InvalidId, TypeError):
        raise bad_request(f"{field} must be a 24-character hex id") from None
