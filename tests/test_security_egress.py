"""Issue 14, findings 1 and 3 (and the provider test's cost, finding 10): where the server connects for a tenant.

An org's own provider chooses its ``baseUrl``; the outbound policy (providers/egress.py) decides whether the
server connects there, connects to the address it checked, follows no redirect, and the provider test endpoint
answers a classified reason, never the upstream's reply. Ids that become URL path segments are checked.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from bson import ObjectId

from providers.base import ChatMessage, LLMOptions, LLMProvider, ProviderError, TTSOptions
from providers.deepgram_stt import DeepgramSTT
from providers.egress import EgressPolicy, EgressRefused, parse_allow
from providers.elevenlabs_tts import ElevenLabsTTS
from providers.groq_llm import GroqLLM
from providers.openai_llm import OpenAILLM
from providers.openai_tts import OpenAITTS
from tests.agent_world import SERVER_KEYS
from tests.factories import Tenant, make_tenant
from tests.loopback.elevenlabs_server import ElevenLabsServer
from tests.loopback.openai_server import OpenAILoopback
from voicex.platform.errors import SettingsError
from voicex.platform.settings import load_settings

PROVIDERS = "/api/dashboard/providers"
TRAVERSAL_VOICE = "../../v1/sound-generation?x="


# --- helpers ---------------------------------------------------------------------------------------------


class Tripwire:
    """A TCP listener that only counts the connections it accepts (nothing should ever reach it)."""

    def __init__(self) -> None:
        self.connections = 0
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> Tripwire:
        def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            writer.close()

        self._server = await asyncio.start_server(accept, host, port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()


def fixed_resolver(*answers: list[str]) -> Any:
    """A DNS stand-in answering ``answers`` in turn (the last one again afterwards); ``calls`` counts lookups."""

    async def resolve(host: str, port: int) -> list[str]:
        resolve.calls += 1  # type: ignore[attr-defined]
        return answers[min(resolve.calls, len(answers)) - 1]  # type: ignore[attr-defined]

    resolve.calls = 0  # type: ignore[attr-defined]
    return resolve


async def reply(llm: LLMProvider) -> str:
    words = [chunk.text async for chunk in llm.stream_chat([ChatMessage("user", "Hi")], LLMOptions(max_tokens=5))]
    return "".join(words)


@pytest.fixture
async def openai_server() -> AsyncIterator[OpenAILoopback]:
    server = await OpenAILoopback().start()
    yield server
    await server.close()


def allow(services, value: str) -> None:
    """What the operator set in VOICEX_EGRESS_ALLOW (the test conftest allows 127.0.0.1)."""
    services.settings = services.settings.model_copy(update={"egress_allow": value})


async def own_provider(client, tenant: Tenant, base_url: str, key: str = "openai", **extra: Any) -> dict[str, Any]:
    category = "tts" if key == "elevenlabs" else "llm"
    body = {
        "category": category,
        "providerKey": key,
        "name": f"Own {key} {ObjectId()}",
        "credentials": {"apiKey": "sk-own"},
        "settings": {"baseUrl": base_url, **extra},
    }
    response = await client.post(PROVIDERS, json=body, headers=tenant.jwt)
    assert response.status == 201, await response.text()
    return await response.json()


async def provider_test(client, tenant: Tenant, provider_id: str) -> dict[str, Any]:
    response = await client.post(f"{PROVIDERS}/{provider_id}/test", headers=tenant.jwt)
    assert response.status == 200, await response.text()
    return await response.json()


# --- finding 1: the policy's rules -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.9", "private"),
        ("192.168.1.20", "private"),
        ("169.254.169.254", "metadata"),
        ("169.254.10.10", "link-local"),
        ("fe80::1", "link-local"),
        ("fd00:ec2::254", "metadata"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("fd12:3456::1", "unique-local"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.251", "multicast"),
    ],
)
async def test_each_refused_address_class_is_refused_by_name_and_by_literal(address: str, why: str) -> None:
    policy = EgressPolicy(resolver=fixed_resolver([address]))
    with pytest.raises(EgressRefused, match=why):
        await policy.check("https://api.tenant-vendor.example/v1")
    literal = f"[{address}]" if ":" in address else address
    with pytest.raises(EgressRefused, match=why):
        await policy.check(f"https://{literal}/v1")
    assert policy.precheck(f"https://{literal}/v1") is not None  # and a 400 when the provider is saved


async def test_public_https_is_allowed_and_plain_http_only_to_allow_listed_hosts() -> None:
    public = EgressPolicy(resolver=fixed_resolver(["93.184.215.14"]))
    target = await public.check("https://api.vendor.example/v1")
    assert (target.host, target.address, target.port) == ("api.vendor.example", "93.184.215.14", 443)
    with pytest.raises(EgressRefused, match="plain http"):
        await public.check("http://api.vendor.example/v1")
    with pytest.raises(EgressRefused, match="metadata"):
        await public.check("https://metadata.google.internal/computeMetadata/v1")
    with pytest.raises(EgressRefused, match="scheme"):
        await public.check("file:///etc/passwd")
    internal = EgressPolicy(parse_allow("ollama.internal:11434, 10.8.0.0/16"), resolver=fixed_resolver(["10.9.0.1"]))
    assert (await internal.check("http://ollama.internal:11434/v1")).address == "10.9.0.1"  # allowed by name
    with pytest.raises(EgressRefused):
        await internal.check("http://ollama.internal:8080/v1")  # another port of it is not
    with pytest.raises(EgressRefused, match="private"):
        await internal.check("https://other.internal/v1")  # 10.9.0.1 is outside 10.8.0.0/16
    assert (await internal.check("http://10.8.3.4:9000/v1")).address == "10.8.3.4"  # allowed by network


def test_a_bad_allow_list_entry_stops_the_server_naming_the_variable() -> None:
    with pytest.raises(SettingsError, match="VOICEX_EGRESS_ALLOW"):
        load_settings(egress_allow="10.0.0.0/8, not a host!")
    assert load_settings(egress_allow="ollama.internal:11434, [fd00::5]:8080, 10.0.0.0/8").egress_allow


async def test_a_policed_adapter_never_connects_to_a_refused_address() -> None:
    trap = await Tripwire().start()
    try:
        resolver = fixed_resolver(["127.0.0.1"])
        policy = EgressPolicy(resolver=resolver)
        for url in (f"https://vendor.example:{trap.port}/v1", f"http://127.0.0.1:{trap.port}/v1"):
            llm = OpenAILLM(api_key="sk", model="m", base_url=url, egress=policy)
            with pytest.raises(EgressRefused) as refused:
                await reply(llm)
            await llm.aclose()
            assert refused.value.retryable is False
        stt = DeepgramSTT("dg", base_url=f"http://127.0.0.1:{trap.port}", egress=EgressPolicy())
        with pytest.raises(EgressRefused):
            await stt.open_session()
        groq = GroqLLM(api_key="gsk", model="m", base_url=f"https://vendor.example:{trap.port}", egress=policy)
        with pytest.raises(EgressRefused):
            await reply(groq)
        await groq.aclose()
        for tts in (
            ElevenLabsTTS("xi", base_url=f"https://vendor.example:{trap.port}", egress=policy),
            OpenAITTS(api_key="sk", base_url=f"https://vendor.example:{trap.port}/v1", egress=policy),
        ):
            with pytest.raises(EgressRefused):
                _ = [audio async for audio in tts.synthesize("Hi.", TTSOptions())]
            await tts.aclose()
        assert trap.connections == 0
    finally:
        await trap.close()


async def test_a_rebinding_dns_answer_cannot_move_a_checked_connection() -> None:
    """The name first resolves to an allowed address, then to loopback: requests go where the check looked."""
    good = await OpenAILoopback(host="127.0.0.2").start()
    port = int(good.root_url.rsplit(":", 1)[1])
    try:
        trap = await Tripwire().start("127.0.0.1", port)  # loopback, same port: where a second lookup would lead
    except OSError:
        await good.close()
        pytest.skip("127.0.0.1 has this port in use")
    resolver = fixed_resolver(["127.0.0.2"], ["127.0.0.1"])
    policy = EgressPolicy(parse_allow("127.0.0.2"), resolver=resolver)
    url = f"http://rebind.example:{port}/v1"
    try:
        llm = OpenAILLM(api_key="sk", model="m", base_url=url, egress=policy)
        assert await reply(llm) == "Hello there! How can I help?"
        assert await reply(llm) == "Hello there! How can I help?"  # same client: the pinned address
        await llm.aclose()
        assert resolver.calls == 1
        assert [r.headers["host"] for r in good.requests] == [f"rebind.example:{port}"] * 2
        again = OpenAILLM(api_key="sk", model="m", base_url=url, egress=policy)
        with pytest.raises(EgressRefused):  # a new check sees the new answer: refused, not followed
            await reply(again)
        await again.aclose()
        assert trap.connections == 0 and len(good.requests) == 2
    finally:
        await trap.close()
        await good.close()


# --- finding 1: through the API ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "base_url",
    [
        "https://169.254.169.254/latest/meta-data",
        "https://[fd00:ec2::254]/",
        "https://metadata.google.internal/",
        "http://10.0.0.7:11434/v1",
        "ftp://files.example.com/",
        "https://user:secret@api.openai.com/v1",
        "https://api.openai.com/v1#fragment",
        "https://api.openai.com/v1?next=http://127.0.0.1",
    ],
)
async def test_a_bad_base_url_is_a_400_on_create_and_on_update(client, services, base_url: str) -> None:
    tenant = await make_tenant(client, services, plan="pro")
    body = {"category": "llm", "providerKey": "openai", "name": "Mine", "credentials": {"apiKey": "sk"}}
    created = await client.post(PROVIDERS, json={**body, "settings": {"baseUrl": base_url}}, headers=tenant.jwt)
    assert created.status == 400
    assert (await created.json())["error"].startswith("settings.baseUrl: ")
    provider = await own_provider(client, tenant, "https://api.openai.com/v1")
    patched = await client.patch(
        f"{PROVIDERS}/{provider['_id']}", json={"settings": {"baseUrl": base_url}}, headers=tenant.jwt
    )
    assert patched.status == 400 and (await patched.json())["error"].startswith("settings.baseUrl: ")


async def test_an_allow_listed_internal_host_works_and_is_refused_once_removed(client, services, openai_server):
    tenant = await make_tenant(client, services, plan="pro")
    provider = await own_provider(client, tenant, openai_server.openai_base_url)  # allowed: 127.0.0.1
    ok = await provider_test(client, tenant, provider["_id"])
    assert ok["ok"] is True and len(openai_server.requests) == 1
    allow(services, "")
    refused = await provider_test(client, tenant, provider["_id"])
    assert refused == {
        "ok": False,
        "latencyMs": None,
        "error": "refused by the egress policy: plain http is only for hosts the operator allow-lists; use https",
    }
    assert len(openai_server.requests) == 1  # nothing more reached the internal host


@pytest.mark.parametrize(
    ("mode", "error"),
    [
        ("unauthorized", "auth refused: the provider rejected the credentials"),
        ("server_error", "bad response from the provider (HTTP 500)"),
    ],
)
async def test_the_provider_test_classifies_failures_and_never_echoes_the_upstream(
    client, services, openai_server, mode: str, error: str
) -> None:
    tenant = await make_tenant(client, services, plan="pro")
    provider = await own_provider(client, tenant, openai_server.openai_base_url)
    openai_server.mode = mode  # type: ignore[assignment]
    body = await provider_test(client, tenant, provider["_id"])
    assert body == {"ok": False, "latencyMs": None, "error": error}


async def test_the_provider_test_reports_unreachable_and_timeout_in_words(client, services, openai_server) -> None:
    tenant = await make_tenant(client, services, plan="pro")
    trap = await Tripwire().start()
    port = trap.port
    await trap.close()  # nothing listens there now
    dead = await own_provider(client, tenant, f"http://127.0.0.1:{port}", key="groq")
    unreachable = await provider_test(client, tenant, dead["_id"])
    assert unreachable["error"] == "unreachable: could not connect to the provider"
    openai_server.mode = "stall_headers"
    slow = await own_provider(client, tenant, openai_server.groq_base_url, key="groq", timeoutSec=0.5)
    body = await provider_test(client, tenant, slow["_id"])
    assert body["error"] == "timeout: the provider did not answer in time"


async def test_redirects_are_not_followed(client, services) -> None:
    hits: list[str] = []

    async def redirect(request: web.Request) -> web.Response:
        hits.append(request.path)
        raise web.HTTPTemporaryRedirect("/internal/admin")

    async def internal(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.json_response({"secret": "internal page"})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", redirect)
    app.router.add_route("*", "/internal/admin", internal)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        tenant = await make_tenant(client, services, plan="pro")
        provider = await own_provider(client, tenant, f"http://{host}:{port}/v1")
        body = await provider_test(client, tenant, provider["_id"])
        assert body == {"ok": False, "latencyMs": None, "error": "bad response from the provider (HTTP 307)"}
        assert hits == ["/v1/chat/completions"]
    finally:
        await runner.cleanup()


# --- finding 3: ids in URL paths ------------------------------------------------------------------------------


@pytest.fixture
async def elevenlabs_global(services) -> AsyncIterator[tuple[ElevenLabsServer, str]]:
    """The global ElevenLabs provider (trusted: the operator's key and URL) pointed at a loopback server."""
    server = await ElevenLabsServer(api_key=SERVER_KEYS["elevenlabs_api_key"], audio=b"\xff" * 800).start()
    services.settings = services.settings.model_copy(update=SERVER_KEYS)
    found = await services.db.providers.find_one({"orgId": None, "providerKey": "elevenlabs"})
    assert found is not None
    await services.db.providers.update_one({"_id": found["_id"]}, {"$set": {"settings.baseUrl": server.base_url}})
    yield server, str(found["_id"])
    await server.close()


async def test_a_voice_id_that_walks_the_vendor_api_is_refused_everywhere(client, services, elevenlabs_global):
    server, global_id = elevenlabs_global
    tenant = await make_tenant(client, services, plan="pro")
    own = {"category": "tts", "providerKey": "elevenlabs", "name": "Mine", "credentials": {"apiKey": "xi-own"}}
    bad_models = {"models": [{"modelId": TRAVERSAL_VOICE}]}
    assert (await client.post(PROVIDERS, json={**own, **bad_models}, headers=tenant.jwt)).status == 400
    agent = {
        "name": "Walker",
        "persona": {"systemPrompt": "Hi", "greeting": "Hello"},
        "llmProviderId": str((await services.db.providers.find_one({"orgId": None, "providerKey": "openai"}))["_id"]),
        "llmModelId": "gpt-4o-mini",
        "ttsProviderId": global_id,
        "ttsModelId": TRAVERSAL_VOICE,
        "sttProviderId": str((await services.db.providers.find_one({"orgId": None, "providerKey": "deepgram"}))["_id"]),
    }
    response = await client.post("/api/dashboard/agents", json=agent, headers=tenant.jwt)
    assert response.status == 400 and "ttsModelId" in (await response.json())["error"]
    # A voice stored before these checks (written straight to the database) still never reaches a URL.
    legacy = await services.db.providers.insert_one(
        {
            **own,
            "orgId": ObjectId(tenant.org_id),
            "credentials": services.box.encrypt({"apiKey": "xi-own"}),
            "models": bad_models["models"],
            "settings": {"baseUrl": server.base_url},
            "active": True,
        }
    )
    body = await provider_test(client, tenant, str(legacy.inserted_id))
    assert body["ok"] is False and "invalid voice id" in body["error"]
    with pytest.raises(ProviderError) as refused:
        ElevenLabsTTS("xi-key", voice=TRAVERSAL_VOICE, base_url=server.base_url)
    assert refused.value.status == 400
    assert (await provider_test(client, tenant, global_id))["ok"] is True  # the real TTS path still works
    assert [r.voice_id for r in server.requests] == ["21m00Tcm4TlvDq8ikWAM"] and server.other_paths == []


# --- finding 10: a provider test on a global provider is a tiny request ---------------------------------------


async def test_a_global_provider_test_spends_only_a_tiny_request(client, services, openai_server) -> None:
    services.settings = services.settings.model_copy(update=SERVER_KEYS)
    tenant = await make_tenant(client, services)
    found = await services.db.providers.find_one({"orgId": None, "providerKey": "openai", "category": "llm"})
    assert found is not None
    await services.db.providers.update_one(
        {"_id": found["_id"]}, {"$set": {"settings.baseUrl": openai_server.openai_base_url}}
    )
    assert (await provider_test(client, tenant, str(found["_id"])))["ok"] is True
    [request] = openai_server.requests
    assert request.body["max_tokens"] <= 3 and request.body["model"] == "gpt-4o-mini"
    assert sum(len(m["content"]) for m in request.body["messages"]) < 100
