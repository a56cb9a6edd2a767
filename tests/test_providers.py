"""Providers over the real HTTP server: registry, global providers, an org's own providers and their secrets."""

from __future__ import annotations

import datetime as dt

import pytest
from bson import ObjectId
from openapi_spec_validator import validate

from tests.factories import make_tenant
from voicex.catalog.config import load_catalog
from voicex.catalog.global_providers import prune_global_providers, sync_global_providers
from voicex.platform.crypto import SecretBox

SECRET = "sk-very-secret-test-key-0123456789"
GLOBALS = {
    ("deepgram", "stt"),
    ("openai", "llm"),
    ("openai", "tts"),
    ("groq", "llm"),
    ("elevenlabs", "tts"),
    ("edge", "tts"),
    ("local", "stt"),
    ("local", "llm"),
    ("local", "tts"),
}


def openai_llm(name: str = "My OpenAI", **extra: object) -> dict[str, object]:
    return {"category": "llm", "providerKey": "openai", "name": name, "credentials": {"apiKey": SECRET}, **extra}


async def create(client, tenant, body: dict[str, object]) -> dict[str, object]:
    response = await client.post("/api/dashboard/providers", json=body, headers=tenant.jwt)
    assert response.status == 201, await response.text()
    return await response.json()


async def test_global_providers_are_synced_from_the_catalog_idempotently(services) -> None:
    first = {(p["providerKey"], p["category"]): p async for p in services.db.providers.find({"orgId": None})}
    assert set(first) == GLOBALS
    assert first[("openai", "llm")]["name"] == "OpenAI LLM" and first[("deepgram", "stt")]["name"] == "Deepgram STT"
    assert first[("openai", "llm")]["settings"] == {"baseUrl": "https://api.openai.com/v1"}
    # A TTS provider lists voices; the vendor's synthesis model is a setting of the TTS provider only.
    assert first[("openai", "tts")]["settings"] == {"baseUrl": "https://api.openai.com/v1", "ttsModel": "tts-1"}
    assert {"modelId": "alloy", "label": "Alloy", "language": "en"} in first[("openai", "tts")]["models"]
    assert first[("openai", "llm")]["credentials"] is None
    # A model dropped from the config is cleaned up on the next start; a provider type this catalog lacks is left
    # as it is (another process on the database may offer it): only `voicex admin prune-providers` deactivates it.
    stale = {"modelId": "gpt-3", "label": "GPT-3"}
    await services.db.providers.update_one({"_id": first[("openai", "llm")]["_id"]}, {"$push": {"models": stale}})
    await services.db.providers.insert_one(
        {"orgId": None, "providerKey": "gone", "category": "llm", "name": "Gone LLM", "models": [], "active": True}
    )
    await sync_global_providers(services.db, services.catalog, services.settings)
    await sync_global_providers(services.db, services.catalog, services.settings)
    again = {(p["providerKey"], p["category"]): p async for p in services.db.providers.find({"orgId": None})}
    assert again.pop(("gone", "llm"))["active"] is True
    assert {key: doc["_id"] for key, doc in again.items()} == {key: doc["_id"] for key, doc in first.items()}
    assert "gpt-3" not in [m["modelId"] for m in again[("openai", "llm")]["models"]]
    assert again[("groq", "llm")]["updatedAt"] == first[("groq", "llm")]["updatedAt"]
    pruned = await prune_global_providers(services.db, services.catalog)
    assert [doc["name"] for doc in pruned] == ["Gone LLM"]
    assert (await services.db.providers.find_one({"providerKey": "gone"}))["active"] is False
    assert await prune_global_providers(services.db, services.catalog) == []


@pytest.mark.scripted_providers
async def test_a_start_with_another_catalog_leaves_the_globals_it_lacks_active(services) -> None:
    """Two servers on one database, one with VOICEX_ENABLE_SCRIPTED_PROVIDERS and one without, must not fight."""
    plain = load_catalog(services.settings.config_dir)  # the catalog of a process without the scripted providers
    await sync_global_providers(services.db, plain, services.settings)
    scripted = services.db.providers.find({"orgId": None, "providerKey": "scripted"})
    assert sorted([(doc["name"], doc["active"]) async for doc in scripted]) == [
        ("Scripted (test) LLM", True),
        ("Scripted (test) STT", True),
        ("Scripted (test) TTS", True),
    ]
    listed = await prune_global_providers(services.db, plain, dry_run=True)
    assert [doc["name"] for doc in listed] == ["Scripted (test) LLM", "Scripted (test) STT", "Scripted (test) TTS"]
    assert await services.db.providers.count_documents({"providerKey": "scripted", "active": True}) == 3


async def test_registry_lists_provider_types_with_fields_and_plan_gated_models(client, services) -> None:
    tenant = await make_tenant(client, services, plan="free")
    response = await client.get("/api/dashboard/providers/registry", headers=tenant.key)
    assert response.status == 200
    registry = await response.json()
    assert isinstance(registry, list)  # a bare array, as the API reference's lists without paging
    types = {item["providerKey"]: item for item in registry}
    assert {"openai", "deepgram", "ollama", "local", "edge"} <= set(types)
    openai = types["openai"]
    assert openai["name"] == "OpenAI" and openai["categories"] == ["llm", "tts"]
    assert openai["credentials"] == [{"key": "apiKey", "label": "API key"}]
    assert openai["settings"] == [
        {
            "key": "baseUrl",
            "label": "Base URL",
            "default": "https://api.openai.com/v1",
            "categories": None,
            "choices": None,
        },
        {
            "key": "ttsModel",
            "label": "Speech model",
            "default": "tts-1",
            "categories": ["tts"],
            "choices": ["tts-1", "tts-1-hd", "gpt-4o-mini-tts"],
        },
    ]
    assert {"modelId": "gpt-4.1", "label": "GPT-4.1", "language": None, "requiredPlan": "pro"} in openai["models"][
        "llm"
    ]
    # A TTS model is a voice, with the language it speaks.
    assert {"modelId": "alloy", "label": "Alloy", "language": "en", "requiredPlan": "free"} in openai["models"]["tts"]
    eleven = types["elevenlabs"]["models"]["tts"]
    assert {"modelId": "21m00Tcm4TlvDq8ikWAM", "label": "Rachel (calm, American)", "language": "en-US"} == {
        key: eleven[0][key] for key in ("modelId", "label", "language")
    }
    assert all(
        voice["language"] for category in ("tts",) for t in types.values() for voice in t["models"].get(category, [])
    )
    assert types["ollama"]["credentials"] == []


async def test_list_shows_globals_and_own_providers_and_filters(client, services) -> None:
    services.settings = services.settings.model_copy(update={"openai_api_key": "sk-env-key-for-globals"})
    tenant = await make_tenant(client, services)
    mine = await create(client, tenant, openai_llm())
    assert mine["source"] == "client" and mine["credentialsSet"] is True and mine["active"] is True
    assert [m["modelId"] for m in mine["models"]] == ["gpt-4o-mini", "gpt-4.1-mini", "gpt-4.1", "gpt-4o"]

    response = await client.get("/api/dashboard/providers", headers=tenant.jwt)
    items = await response.json()
    assert len(items) == len(GLOBALS) + 1
    by_name = {item["name"]: item for item in items}
    assert by_name["My OpenAI"]["_id"] == mine["_id"]
    assert by_name["OpenAI LLM"]["source"] == "global" and by_name["OpenAI LLM"]["credentialsSet"] is True
    assert by_name["Deepgram STT"]["credentialsSet"] is False  # DEEPGRAM_API_KEY unset
    assert by_name["Microsoft Edge TTS"]["credentialsSet"] is True  # needs no key
    assert "sk-env-key-for-globals" not in await response.text()
    assert all("credentials" not in item for item in items)

    own = await (await client.get("/api/dashboard/providers?client=true", headers=tenant.jwt)).json()
    assert [item["_id"] for item in own] == [mine["_id"]]
    stt = await (await client.get("/api/dashboard/providers?category=stt", headers=tenant.jwt)).json()
    assert {item["name"] for item in stt} == {"Deepgram STT", "Voicex embedded (offline) STT"}
    bad = await client.get("/api/dashboard/providers?category=video", headers=tenant.jwt)
    assert bad.status == 400 and (await bad.json())["error"].startswith("category:")


async def test_create_refusals_in_order(client, services) -> None:
    free = await make_tenant(client, services, plan="free")
    response = await client.post("/api/dashboard/providers", json=openai_llm(), headers=free.jwt)
    assert response.status == 403
    assert await response.json() == {"error": "your plan does not allow custom providers"}

    tenant = await make_tenant(client, services, plan="starter")
    cases = [
        ({**openai_llm(), "providerKey": "acme"}, "providerKey:"),
        ({**openai_llm(), "providerKey": "deepgram"}, "category:"),
        ({**openai_llm(), "credentials": {}}, "credentials.apiKey: required"),
        ({**openai_llm(), "credentials": {"apiKey": SECRET, "token": "x"}}, "credentials.token:"),
        ({**openai_llm(), "settings": {"region": "eu"}}, "settings.region:"),
        ({**openai_llm(), "models": []}, "models:"),
        ({**openai_llm(), "name": "   "}, "name:"),
    ]
    for body, prefix in cases:
        response = await client.post("/api/dashboard/providers", json=body, headers=tenant.jwt)
        assert response.status == 400, body
        assert (await response.json())["error"].startswith(prefix), (prefix, await response.text())

    await create(client, tenant, openai_llm("One"))
    response = await client.post("/api/dashboard/providers", json=openai_llm("One"), headers=tenant.jwt)
    assert response.status == 409 and "One" in (await response.json())["error"]
    await create(client, tenant, {"category": "llm", "providerKey": "ollama", "name": "Two"})
    await create(client, tenant, openai_llm("Three", category="tts"))
    response = await client.post("/api/dashboard/providers", json=openai_llm("Four"), headers=tenant.jwt)
    assert response.status == 403
    assert await response.json() == {"error": "your plan allows at most 3 custom providers"}
    assert await services.db.providers.count_documents({"orgId": ObjectId(tenant.org_id)}) == 3


async def test_own_tts_provider_lists_voices_that_are_safe_url_path_segments(client, services) -> None:
    tenant = await make_tenant(client, services)
    eleven = {
        "category": "tts",
        "providerKey": "elevenlabs",
        "name": "Our voices",
        "credentials": {"apiKey": SECRET},
        "settings": {"ttsModel": "eleven_turbo_v2_5"},
    }
    defaults = await create(client, tenant, eleven)
    assert defaults["models"][0] == {
        "modelId": "21m00Tcm4TlvDq8ikWAM",
        "label": "Rachel (calm, American)",
        "language": "en-US",
    }
    assert defaults["settings"]["ttsModel"] == "eleven_turbo_v2_5"
    cloned = await create(
        client,
        tenant,
        {
            **eleven,
            "name": "Cloned",
            "models": [{"modelId": "Xb7hH8MSUJpSbSDYk0k2", "label": "Our brand voice", "language": "en-GB"}],
        },
    )
    assert cloned["models"] == [{"modelId": "Xb7hH8MSUJpSbSDYk0k2", "label": "Our brand voice", "language": "en-GB"}]
    # A voice id goes into the vendor's URL path: nothing that could leave the segment is accepted.
    for voice in ("../../v1/user", "a/b", "voice?x=1", "..", "%2e%2e"):
        response = await client.post(
            "/api/dashboard/providers",
            json={**eleven, "name": f"Bad {voice}", "models": [{"modelId": voice}]},
            headers=tenant.jwt,
        )
        assert response.status == 400, voice
        assert (await response.json())["error"].startswith("models.0.modelId: a voice id may hold only"), voice
    patched = await client.patch(
        f"/api/dashboard/providers/{cloned['_id']}", json={"models": [{"modelId": "x/../y"}]}, headers=tenant.jwt
    )
    assert patched.status == 400
    llm_setting = await client.post(
        "/api/dashboard/providers", json=openai_llm("LLM", settings={"ttsModel": "tts-1"}), headers=tenant.jwt
    )
    assert llm_setting.status == 400 and (await llm_setting.json())["error"].startswith("settings.ttsModel:")


async def test_credentials_are_encrypted_at_rest_and_never_returned(client, services) -> None:
    tenant = await make_tenant(client, services)
    created_response = await client.post("/api/dashboard/providers", json=openai_llm(), headers=tenant.jwt)
    created = await created_response.json()
    texts = [await created_response.text()]
    for path in ("/api/dashboard/providers", f"/api/dashboard/providers/{created['_id']}"):
        texts.append(await (await client.get(path, headers=tenant.key)).text())
    patched = await client.patch(
        f"/api/dashboard/providers/{created['_id']}",
        json={"credentials": {"apiKey": SECRET + "-2"}},
        headers=tenant.jwt,
    )
    texts.append(await patched.text())
    assert all(SECRET not in text and '"credentials"' not in text for text in texts)
    raw = await services.db.providers.find_one({"_id": ObjectId(created["_id"])})
    assert isinstance(raw["credentials"], str) and SECRET not in raw["credentials"]
    assert SecretBox(services.settings.encryption_key).decrypt(raw["credentials"]) == {"apiKey": SECRET + "-2"}


async def test_patch_updates_own_provider_and_refuses_globals(client, services) -> None:
    tenant = await make_tenant(client, services)
    provider = await create(client, tenant, openai_llm())
    await create(client, tenant, openai_llm("Taken"))
    url = f"/api/dashboard/providers/{provider['_id']}"
    body = {
        "name": "Renamed",
        "active": False,
        "models": [{"modelId": "ft:gpt-4o:acme"}],
        "settings": {"baseUrl": "https://proxy.example.com/v1"},
    }
    response = await client.patch(url, json=body, headers=tenant.jwt)
    assert response.status == 200, await response.text()
    updated = await response.json()
    assert updated["name"] == "Renamed" and updated["active"] is False
    assert updated["models"] == [{"modelId": "ft:gpt-4o:acme", "label": "ft:gpt-4o:acme", "language": None}]
    assert updated["settings"] == {"baseUrl": "https://proxy.example.com/v1"}
    assert updated["updatedAt"] > provider["updatedAt"]
    assert (await (await client.get(url, headers=tenant.jwt)).json())["name"] == "Renamed"

    response = await client.patch(url, json={"name": "Taken"}, headers=tenant.jwt)
    assert response.status == 409
    response = await client.patch(url, json={}, headers=tenant.jwt)
    assert response.status == 400 and (await response.json())["error"].startswith("nothing to update")
    response = await client.patch(url, json={"credentials": {}}, headers=tenant.jwt)
    assert response.status == 400 and (await response.json())["error"] == "credentials.apiKey: required"

    global_doc = await services.db.providers.find_one({"orgId": None, "providerKey": "openai", "category": "llm"})
    global_url = f"/api/dashboard/providers/{global_doc['_id']}"
    assert (await (await client.get(global_url, headers=tenant.jwt)).json())["source"] == "global"
    for response in (
        await client.patch(global_url, json={"name": "Mine now"}, headers=tenant.jwt),
        await client.delete(global_url, headers=tenant.jwt),
    ):
        assert response.status == 403
        assert await response.json() == {"error": "global providers are read-only"}
    assert (await services.db.providers.find_one({"_id": global_doc["_id"]}))["name"] == "OpenAI LLM"


async def test_delete_refuses_while_agents_use_the_provider(client, services) -> None:
    tenant = await make_tenant(client, services)
    provider = await create(client, tenant, openai_llm())
    url = f"/api/dashboard/providers/{provider['_id']}"
    now = dt.datetime.now(dt.UTC)
    agent = {
        "orgId": ObjectId(tenant.org_id),
        "name": "Receptionist",
        "llmProviderId": ObjectId(provider["_id"]),
        "llmModelId": "gpt-4o-mini",
        "createdAt": now,
    }
    agent_id = (await services.db.agents.insert_one(agent)).inserted_id
    response = await client.delete(url, headers=tenant.jwt)
    assert response.status == 409
    assert await response.json() == {
        "error": "provider is used by agents",
        "agents": [{"_id": str(agent_id), "name": "Receptionist"}],
    }
    # A fallback reference counts too.
    fallback = {"llm": [{"providerId": agent["llmProviderId"], "modelId": "gpt-4o-mini"}]}
    fallback_only = {"$unset": {"llmProviderId": ""}, "$set": {"fallbacks": fallback}}
    await services.db.agents.update_one({"_id": agent_id}, fallback_only)
    assert (await client.delete(url, headers=tenant.jwt)).status == 409

    await services.db.agents.delete_one({"_id": agent_id})
    response = await client.delete(url, headers=tenant.jwt)
    assert response.status == 200 and await response.json() == {"deleted": True}
    assert (await client.get(url, headers=tenant.jwt)).status == 404


async def test_another_tenant_cannot_see_or_touch_your_provider(client, services) -> None:
    owner = await make_tenant(client, services)
    other = await make_tenant(client, services)
    provider = await create(client, owner, openai_llm())
    url = f"/api/dashboard/providers/{provider['_id']}"
    for response in (
        await client.get(url, headers=other.jwt),
        await client.patch(url, json={"name": "Stolen"}, headers=other.key),
        await client.delete(url, headers=other.jwt),
    ):
        assert response.status == 404
        assert await response.json() == {"error": "provider not found"}
    listed = await (await client.get("/api/dashboard/providers", headers=other.jwt)).json()
    assert provider["_id"] not in [item["_id"] for item in listed]
    assert (await client.get("/api/dashboard/providers/not-an-id", headers=other.jwt)).status == 404
    # The other tenant may use the same name in its own organization.
    await create(client, other, openai_llm())
    assert (await (await client.get(url, headers=owner.jwt)).json())["name"] == "My OpenAI"


async def test_openapi_document_lists_provider_paths_and_validates(client) -> None:
    response = await client.get("/api/openapi.json")
    spec = await response.json()
    validate(spec)
    paths = spec["paths"]
    assert {"get", "post"} <= set(paths["/api/dashboard/providers"])
    assert {"get", "patch", "delete"} <= set(paths["/api/dashboard/providers/{id}"])
    assert "get" in paths["/api/dashboard/providers/registry"]
    assert "get" in paths["/api/dashboard/models/search"]
    create_op = paths["/api/dashboard/providers"]["post"]
    assert {"201", "400", "403", "409"} <= set(create_op["responses"])
