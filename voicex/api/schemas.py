"""Response shapes shared by several API modules (for the OpenAPI document; handlers build plain dicts)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

ObjectIdStr = Field(pattern=r"^[0-9a-f]{24}$", description="24-hex ObjectId")
# MongoDB takes 64-bit integers only: an unbounded ?skip=10**30 used to reach the driver and answer 500.
MAX_SKIP = 1_000_000_000
# The query parameters of every paged list (``skip: Skip = 0, limit: Limit = 20``); each list picks its default.
Skip = Annotated[int, Field(ge=0, le=MAX_SKIP)]
Limit = Annotated[int, Field(ge=1, le=100)]


class Out(BaseModel):
    model_config = ConfigDict(populate_by_name=True)


class UserOut(Out):
    id: str = Field(alias="_id")
    email: str
    name: str
    role: Literal["admin", "member", "platform_admin"]
    orgId: str | None
    platformAdmin: bool
    createdAt: str


class LimitsOut(Out):
    maxAgents: int
    maxConcurrentCalls: int
    maxCallDurationSec: int
    maxMonthlyMinutes: int


class TwilioOut(Out):
    accountSid: str | None
    authTokenSet: bool


class OrganizationOut(Out):
    id: str = Field(alias="_id")
    name: str
    status: Literal["pending", "active", "suspended"]
    planSlug: str
    planName: str
    limits: LimitsOut
    twilio: TwilioOut
    createdAt: str
    updatedAt: str | None = None


class PricingOut(Out):
    monthly: float
    annual: float
    maxDiscountPercent: float


class FeaturesOut(Out):
    customProviders: bool
    maxCustomProviders: int


class PlanModelsOut(Out):
    llm: list[str]
    tts: list[str]
    stt: list[str]


class PlanOut(Out):
    slug: str
    name: str
    description: str
    pricing: PricingOut
    limits: LimitsOut
    features: FeaturesOut
    public: bool
    custom: bool
    models: PlanModelsOut | None = Field(None, description="only on /api/dashboard/plan")


class Page(Out):
    """A paged list's answer; each list subclasses it with its ``items`` and answers with :func:`page`."""

    total: int
    skip: int
    limit: int


def page(items: Sequence[Any], total: int, skip: int, limit: int) -> dict[str, Any]:
    """The body of a :class:`Page`: ``items`` (the page itself) out of ``total``, as asked by skip/limit."""
    return {"items": list(items), "total": total, "skip": skip, "limit": limit}


class Deleted(Out):
    deleted: bool
