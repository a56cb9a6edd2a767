"""Field types shared by the request bodies of several floors (api/, agents/)."""

from __future__ import annotations

from typing import Annotated, TypeVar

from pydantic import AfterValidator

S = TypeVar("S", bound=str)


def strip_non_blank(value: str) -> str:
    """``value`` without surrounding whitespace; a name of only spaces would show as nothing in the dashboard."""
    value = value.strip()
    if not value:
        raise ValueError("must not be blank")
    return value


# A name: stripped of surrounding whitespace, refused when blank ("name: must not be blank"). It wraps the
# constrained string, e.g. ``NonBlank[Annotated[str, Field(min_length=1, max_length=120)]]``, so the length limits
# run first, on the value as sent, with their own messages; limits added outside would run after the strip.
NonBlank = Annotated[S, AfterValidator(strip_non_blank)]
