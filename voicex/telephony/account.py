"""The organization's Twilio account as the telephony layer needs it: the Auth Token that signs its requests."""

from __future__ import annotations

from voicex.platform.services import Services
from voicex.store.organizations import Organization


def twilio_token(svc: Services, org: Organization) -> str | None:
    """The org's stored Twilio auth token (decrypted), else VOICEX_TWILIO_AUTH_TOKEN."""
    twilio = org.get("twilio")
    stored = twilio.get("authToken") if twilio else None
    if stored:
        return str(svc.box.decrypt(stored))
    return svc.settings.twilio_auth_token
