"""Model search: plan gating of global models, the org's own models, filtering, ordering and paging."""

from __future__ import annotations

from tests.factories import make_tenant

SEARCH = "/api/dashboard/models/search"


async def search(client, tenant, **params: object) -> dict[str, object]:
    response = await client.get(SEARCH, params={k: str(v) for k, v in params.items()}, headers=tenant.jwt)
    assert response.status == 200, await response.text()
    return await response.json()


async def test_free_plan_sees_allowed_models_first_and_what_the_rest_need(client, services) -> None:
    tenant = await make_tenant(client, services, plan="free")
    page = await search(client, tenant, category="stt", limit=100)
    items = page["items"]
    assert page["total"] == len(items) == 4 and page["skip"] == 0 and page["limit"] == 100
    assert [item["allowed"] for item in items] == [True, True, True, False]
    nova3 = items[-1]
    assert nova3 == {
        "providerId": nova3["providerId"],
        "providerKey": "deepgram",
        "providerName": "Deepgram STT",
        "modelId": "nova-3",
        "label": "Nova-3",
        "source": "global",
        "allowed": False,
        "requiredPlan": "starter",
        "language": None,
    }
    assert all(item["requiredPlan"] is None for item in items[:-1])
    global_doc = await services.db.providers.find_one({"orgId": None, "providerKey": "deepgram"})
    assert nova3["providerId"] == str(global_doc["_id"])

    tts = (await search(client, tenant, category="tts", limit=100))["items"]
    gated = [item["requiredPlan"] for item in tts if not item["allowed"]]
    assert gated and gated == sorted(gated, key=["starter", "pro"].index)  # cheapest upgrade first
    # TTS models are voices, each with its language; ElevenLabs voices need the Starter plan.
    assert {"modelId": "21m00Tcm4TlvDq8ikWAM", "label": "Rachel (calm, American)", "language": "en-US"}.items() <= next(
        item for item in tts if item["modelId"] == "21m00Tcm4TlvDq8ikWAM"
    ).items()
    assert {(item["providerKey"], item["requiredPlan"]) for item in tts if not item["allowed"]} == {
        ("elevenlabs", "starter")
    }
    assert all(item["language"] for item in tts)


async def test_a_richer_plan_unlocks_models(client, services) -> None:
    tenant = await make_tenant(client, services, plan="starter")
    items = (await search(client, tenant, category="stt", limit=100))["items"]
    assert all(item["allowed"] and item["requiredPlan"] is None for item in items)
    llm = {item["modelId"]: item for item in (await search(client, tenant, category="llm", limit=100))["items"]}
    assert llm["gpt-4.1-mini"]["allowed"] is True and llm["gpt-4.1"]["requiredPlan"] == "pro"


async def test_own_provider_models_are_always_allowed_and_inactive_ones_hidden(client, services) -> None:
    tenant = await make_tenant(client, services, plan="starter")
    body = {
        "category": "llm",
        "providerKey": "openai",
        "name": "Our OpenAI",
        "credentials": {"apiKey": "sk-x"},
        "models": [{"modelId": "gpt-4o", "label": "GPT-4o (ours)"}],
    }
    response = await client.post("/api/dashboard/providers", json=body, headers=tenant.jwt)
    provider = await response.json()
    items = (await search(client, tenant, category="llm", query="gpt-4o", limit=100))["items"]
    ours = [item for item in items if item["source"] == "client"]
    assert ours == [
        {
            "providerId": provider["_id"],
            "providerKey": "openai",
            "providerName": "Our OpenAI",
            "modelId": "gpt-4o",
            "label": "GPT-4o (ours)",
            "source": "client",
            "allowed": True,
            "requiredPlan": None,
            "language": None,
        }
    ]
    theirs = next(item for item in items if item["source"] == "global" and item["modelId"] == "gpt-4o")
    assert theirs["allowed"] is False and theirs["requiredPlan"] == "pro"
    assert items.index(ours[0]) < items.index(theirs)

    await client.patch(f"/api/dashboard/providers/{provider['_id']}", json={"active": False}, headers=tenant.jwt)
    items = (await search(client, tenant, category="llm", query="gpt-4o", limit=100))["items"]
    assert all(item["source"] == "global" for item in items)

    other = await make_tenant(client, services, plan="starter")
    items = (await search(client, other, category="llm", limit=100))["items"]
    assert all(item["providerName"] != "Our OpenAI" for item in items)


async def test_query_matches_id_or_label_case_insensitively_as_plain_text(client, services) -> None:
    tenant = await make_tenant(client, services, plan="free")
    by_id = await search(client, tenant, category="stt", query="NOVA")
    assert [item["modelId"] for item in by_id["items"]] == ["nova-2-phonecall", "nova-2", "nova-3"]
    by_label = await search(client, tenant, category="stt", query="faster-WHISPER")
    assert [item["modelId"] for item in by_label["items"]] == ["whisper-tiny.en"]
    for pattern in (".*", "nova.2", "(nova", "[a-z]"):
        assert (await search(client, tenant, category="stt", query=pattern))["total"] == 0, pattern
    assert [i["modelId"] for i in (await search(client, tenant, category="stt", query="tiny.en"))["items"]] == [
        "whisper-tiny.en"
    ]


async def test_paging_covers_every_hit_once(client, services) -> None:
    tenant = await make_tenant(client, services, plan="free")
    everything = await search(client, tenant, category="tts", limit=100)
    assert everything["total"] >= 10
    total = everything["total"]
    pages = [await search(client, tenant, category="tts", skip=skip, limit=4) for skip in range(0, total + 4, 4)]
    assert all(page["total"] == everything["total"] and page["limit"] == 4 for page in pages)
    assert all(len(page["items"]) <= 4 for page in pages)
    assert [item for page in pages for item in page["items"]] == everything["items"]
    assert (await search(client, tenant, category="tts"))["limit"] == 10


async def test_bad_parameters_are_400_naming_the_field(client, services) -> None:
    tenant = await make_tenant(client, services)
    for params, field in (
        ({}, "category:"),
        ({"category": "video"}, "category:"),
        ({"category": "llm", "limit": "0"}, "limit:"),
        ({"category": "llm", "limit": "101"}, "limit:"),
        ({"category": "llm", "skip": "-1"}, "skip:"),
    ):
        response = await client.get(SEARCH, params=params, headers=tenant.jwt)
        assert response.status == 400, params
        assert (await response.json())["error"].startswith(field), await response.text()
    assert (await client.get(SEARCH, params={"category": "llm"})).status == 401
