"""The deployment files are linted like code: the Dockerfile (hadolint), compose.yaml (the Compose
specification's schema) and deploy/kubernetes/ (the Kubernetes API schemas, offline, strict), and they agree
with the server on what matters to a caller: the drain gets its time, readiness is the drain-aware probe."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from voicex.platform.settings import Settings
from voicex.server.drain import AFTER_TIMEOUT_SEC

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
MANIFESTS = sorted((ROOT / "deploy" / "kubernetes").glob("*.yaml"))
DRAIN_SEC = Settings.model_fields["drain_timeout_sec"].default
STOP_SEC = DRAIN_SEC + AFTER_TIMEOUT_SEC  # the longest a drain-then-stop may take: the kill must wait this long


def tool(name: str) -> str:
    path = BIN / name if (BIN / name).exists() else shutil.which(name)
    assert path, f"{name} is not installed: it comes with the dev extra (scripts/test.sh installs it)"
    return str(path)


def check(command: list[str]) -> str:
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, f"{' '.join(command)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def test_the_dockerfile_passes_hadolint_and_runs_as_a_non_root_user_with_a_health_check() -> None:
    check([tool("hadolint"), "--config", ".hadolint.yaml", "Dockerfile"])
    text = (ROOT / "Dockerfile").read_text()
    assert "\nUSER " in text and "\nUSER root" not in text
    assert "HEALTHCHECK" in text and "STOPSIGNAL SIGTERM" in text


def test_compose_file_matches_the_compose_specification_and_gives_the_drain_its_time() -> None:
    check([tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", "compose.yaml"])
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    voicex = compose["services"]["voicex"]
    assert int(voicex["stop_grace_period"].rstrip("s")) >= STOP_SEC
    assert "replicaSet=" in voicex["environment"]["VOICEX_MONGODB_URI"]
    assert "--replSet" in compose["services"]["mongo"]["command"]
    assert "/api/ready" in " ".join(voicex["healthcheck"]["test"])


def test_kubernetes_manifests_validate_and_the_pods_drain_before_they_go() -> None:
    assert MANIFESTS
    check([tool("kubernetes-validate"), "--strict", "--quiet", *map(str, MANIFESTS)])
    docs = {doc["kind"]: doc for path in MANIFESTS for doc in yaml.safe_load_all(path.read_text()) if doc}
    assert {"Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler"} <= set(docs)
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = {item["name"]: item.get("value") for item in container["env"]}
    drain = float(env.get("VOICEX_DRAIN_TIMEOUT_SEC") or DRAIN_SEC)
    assert pod["terminationGracePeriodSeconds"] >= drain + AFTER_TIMEOUT_SEC
    assert container["readinessProbe"]["httpGet"]["path"] == "/api/ready"
    assert "kill -TERM 1" in " ".join(container["lifecycle"]["preStop"]["exec"]["command"])
    assert pod["securityContext"]["runAsNonRoot"] is True
    metric = docs["HorizontalPodAutoscaler"]["spec"]["metrics"][0]["pods"]["metric"]["name"]
    assert metric == "voicex_active_calls"


@pytest.mark.parametrize("manifest", MANIFESTS, ids=lambda path: path.name)
def test_each_manifest_is_strict_valid_on_its_own(manifest: Path) -> None:
    check([tool("kubernetes-validate"), "--strict", "--quiet", str(manifest)])
