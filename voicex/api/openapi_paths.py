"""OpenAPI path items written by hand, for the routes that are not JSON endpoints validated by pydantic.

Twilio's form-encoded webhooks answered with TwiML, the Media Stream's WebSocket upgrade, the Prometheus scrape,
the API docs and the pages. Kept here rather than on the handlers so the telephony code stays about telephony;
voicex/api/openapi.py merges each item whose method and path the app registers.
"""

from __future__ import annotations

from typing import Any

from voicex.api.docs import ASSETS

ERROR_REF = {"$ref": "#/components/schemas/ErrorOut"}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": ERROR_REF}}}


_TEXT = {"type": "string"}

_TWILIO_PARAMETERS: list[dict[str, Any]] = [
    {
        "name": "api_key",
        "in": "query",
        "required": True,
        "description": (
            "An API key of the organization that owns the agent; it picks the organization. Use a key made with"
            ' `scopes: ["twilio"]`: it admits calls and can do nothing on the dashboard API.'
        ),
        "schema": {"type": "string", "pattern": "^vx_[0-9a-f]{48}$"},
    },
    {
        "name": "X-Twilio-Signature",
        "in": "header",
        "required": False,
        "description": "Twilio's signature of the request; required unless VOICEX_TWILIO_VALIDATE_SIGNATURE=false.",
        "schema": _TEXT,
    },
]

_VOICE_FORM = {
    "type": "object",
    "description": "Twilio's voice webhook parameters (Twilio sends more; they are ignored).",
    "properties": {
        "CallSid": {"type": "string", "description": "Twilio's id of the call (CA…)"},
        "AccountSid": {"type": "string", "description": "the Twilio account (AC…)"},
        "From": {"type": "string", "description": "the caller's number"},
        "To": {"type": "string", "description": "the called number: picks the agent whose phoneNumbers hold it"},
        "Direction": {"type": "string", "description": "inbound, outbound-api or outbound-dial"},
        "CallStatus": {"type": "string"},
    },
    "additionalProperties": _TEXT,
}

_STATUS_FORM = {
    "type": "object",
    "description": "Twilio's status callback parameters (Twilio sends more; they are ignored).",
    "properties": {
        "CallSid": {"type": "string", "description": "Twilio's id of the call (CA…)"},
        "CallStatus": {
            "type": "string",
            "enum": [
                "queued",
                "initiated",
                "ringing",
                "in-progress",
                "completed",
                "busy",
                "failed",
                "no-answer",
                "canceled",
            ],
        },
        "SequenceNumber": {"type": "string", "description": "orders the callbacks; older ones are ignored"},
        "CallDuration": {"type": "string", "description": "seconds, on the final callback"},
    },
    "additionalProperties": _TEXT,
}

_TWIML_EXAMPLE = (
    '<?xml version="1.0" encoding="UTF-8"?><Response><Connect>'
    '<Stream url="wss://voice.example.com/api/twilio/stream/{callId}/{token}">'
    '<Parameter name="callId" value="…"/></Stream></Connect><Hangup/></Response>'
)

_HTML = {"text/html": {"schema": _TEXT}}

PATHS: dict[str, dict[str, dict[str, Any]]] = {
    "/api/twilio/voice": {
        "post": {
            "tags": ["twilio"],
            "summary": "Twilio's voice webhook: admit the call and answer TwiML that opens its Media Stream",
            "description": (
                "Set as the number's voice URL in the Twilio console. The agent is the one whose `phoneNumbers`"
                " hold `To`, or `agentId`. A call that cannot be taken (no agent, plan limits) gets TwiML that says"
                " why and hangs up."
            ),
            "parameters": [
                *_TWILIO_PARAMETERS,
                {
                    "name": "agentId",
                    "in": "query",
                    "required": False,
                    "description": "answer with this agent instead of the one holding the called number",
                    "schema": {"type": "string"},
                },
            ],
            "requestBody": {
                "required": True,
                "content": {"application/x-www-form-urlencoded": {"schema": _VOICE_FORM}},
            },
            "responses": {
                "200": {
                    "description": (
                        "TwiML: `<Connect><Stream>` to /api/twilio/stream/{callId}/{token}, or `<Say>` why not and"
                        " hang up. A CallSid already answered gets the same answer again (nothing more is admitted)"
                    ),
                    "content": {"text/xml": {"schema": _TEXT, "example": _TWIML_EXAMPLE}},
                },
                "403": _error(
                    "Unknown api_key, Twilio's signature missing or invalid, or AccountSid not the organization's"
                ),
            },
        }
    },
    "/api/twilio/status": {
        "post": {
            "tags": ["twilio"],
            "summary": "Twilio's status callback: record the call's progress",
            "description": (
                "Set as the number's status callback URL. Callbacks may arrive in any order; a call that ends"
                " before its Media Stream started is finalized here."
            ),
            "parameters": _TWILIO_PARAMETERS,
            "requestBody": {
                "required": True,
                "content": {"application/x-www-form-urlencoded": {"schema": _STATUS_FORM}},
            },
            "responses": {
                "204": {"description": "Recorded (or not a call of this organization)"},
                "403": _error(
                    "Unknown api_key, Twilio's signature missing or invalid, or AccountSid not the organization's"
                ),
            },
        }
    },
    "/api/twilio/stream/{call_id}/{token}": {
        "get": {
            "tags": ["twilio"],
            "summary": "Twilio Media Stream: a WebSocket carrying one call's audio both ways",
            "description": (
                "Opened by Twilio from the TwiML of the voice webhook, never by hand. The path carries the call id and"
                " its one-use, short-lived token; the token and Twilio's signature over this URL are checked before"
                " upgrading. Then Twilio sends `connected`, `start` (within VOICEX_STREAM_START_TIMEOUT_SEC), 20 ms"
                " μ-law `media` frames, `mark` echoes, `dtmf` and `stop`; Voicex sends `media`, `mark` and `clear`."
                " A stream whose media format is wrong is closed before any audio."
            ),
            "parameters": [
                {"name": "call_id", "in": "path", "required": True, "schema": _TEXT},
                {"name": "token", "in": "path", "required": True, "schema": _TEXT},
                {
                    "name": "Upgrade",
                    "in": "header",
                    "required": True,
                    "schema": {"type": "string", "enum": ["websocket"]},
                },
                _TWILIO_PARAMETERS[1],
            ],
            "responses": {
                "101": {"description": "Switching Protocols: the WebSocket is open"},
                "400": _error("Not a WebSocket upgrade"),
                "403": _error("Token invalid, expired or already used, call ended, or Twilio's signature invalid"),
                "503": _error("Too many streams of this process are waiting for `start` (VOICEX_STREAM_PENDING_MAX)"),
            },
        }
    },
    "/metrics": {
        "get": {
            "tags": ["health"],
            "summary": "Prometheus metrics of this server process",
            "description": "Open unless VOICEX_METRICS_TOKEN is set; then `Authorization: Bearer <that token>`.",
            "security": [{}, {"metricsToken": []}],
            "responses": {
                "200": {"description": "Prometheus text exposition", "content": {"text/plain": {"schema": _TEXT}}},
                "401": _error("VOICEX_METRICS_TOKEN is set and the request does not carry it"),
            },
        }
    },
    "/api/openapi.json": {
        "get": {
            "tags": ["docs"],
            "summary": "This OpenAPI 3.1 document",
            "responses": {
                "200": {"description": "The document", "content": {"application/json": {"schema": {"type": "object"}}}}
            },
        }
    },
    "/api/docs": {
        "get": {
            "tags": ["docs"],
            "summary": "Swagger UI over this document (served from this server: works offline)",
            "responses": {"200": {"description": "The Swagger UI page", "content": _HTML}},
        }
    },
    "/api/docs/{asset}": {
        "get": {
            "tags": ["docs"],
            "summary": "A file of Swagger UI (script, style sheet, icon)",
            "parameters": [
                {"name": "asset", "in": "path", "required": True, "schema": {"type": "string", "enum": sorted(ASSETS)}}
            ],
            "responses": {
                "200": {
                    "description": "The file",
                    "content": {media.split(";")[0]: {"schema": _TEXT} for media in sorted(set(ASSETS.values()))},
                },
                "404": _error("No such file, or Swagger UI is not installed"),
            },
        }
    },
    "/": {
        "get": {
            "tags": ["docs"],
            "summary": "Where to start: the dashboard when there is one, else a page linking the docs and probes",
            "responses": {
                "200": {
                    "description": "A small HTML page linking the API docs, health and readiness",
                    "content": _HTML,
                },
                "302": {"description": "To the dashboard, when one is installed (a route at /app)"},
            },
        }
    },
}

SECURITY_SCHEMES = {
    "metricsToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "VOICEX_METRICS_TOKEN, for /metrics when it is set",
    }
}
