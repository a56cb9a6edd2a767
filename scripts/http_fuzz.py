"""Schemathesis against ``/api/openapi.json`` of a running server: every operation, valid and invalid input,
as a signed-in user (JWT), with an API key and with no credentials.

Findings (not assertions, so one run reports them all): any 5xx, any error response whose body is not
``{"error": "..."}``, and where the schema declares a response, a body, status code or content type that
does not conform. Synchronous (schemathesis calls through ``requests``): run it in a thread next to an
in-process server.
"""

from __future__ import annotations

import secrets
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import content_type_conformance, response_schema_conformance, status_code_conformance
from schemathesis.core.failures import Failure, FailureGroup

SCHEMA_CHECKS = [status_code_conformance, content_type_conformance, response_schema_conformance]
TIMEOUT_S = 15.0


@dataclass
class HttpReport:
    requests: int = 0
    operations: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    findings: dict[str, str] = field(default_factory=dict)  # one example per (operation, kind of problem)

    @property
    def server_errors(self) -> int:
        return sum(count for status, count in self.statuses.items() if status >= 500)

    def add(self, key: str, example: str) -> None:
        self.findings.setdefault(key, example)

    def lines(self) -> list[str]:
        return [
            f"operations          {self.operations}",
            f"requests            {self.requests}",
            f"responses 5xx       {self.server_errors}",
            f"statuses            {dict(sorted(self.statuses.items()))}",
            f"findings            {len(self.findings)}",
            *(f"  ! {key}: {example}" for key, example in sorted(self.findings.items())),
        ]


def credentials(base_url: str, admin_email: str, admin_password: str) -> dict[str, dict[str, str]]:
    """Sign up a fresh organization and have the platform admin activate it. Returns the credential sets to
    fuzz with: the platform admin's JWT, the org admin's JWT, an API key of the org, and none at all."""
    http = requests.Session()

    def call(method: str, path: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
        response = http.request(method, f"{base_url}{path}", json=body, headers=headers, timeout=TIMEOUT_S)
        if response.status_code >= 300:
            raise RuntimeError(f"{method} {path} answered {response.status_code}: {response.text[:200]}")
        return response.json()

    signin = call("POST", "/api/auth/signin", {"email": admin_email, "password": admin_password})
    admin = {"Authorization": f"Bearer {signin['token']}"}
    tag = secrets.token_hex(4)
    body = {"name": "Fuzz", "email": f"fuzz-{tag}@example.com", "password": f"fuzz-{tag}-password", "orgName": tag}
    signup = call("POST", "/api/auth/signup", body)
    call("PATCH", f"/api/admin/organizations/{signup['organization']['_id']}", {"status": "active"}, admin)
    jwt = {"Authorization": f"Bearer {signup['token']}"}
    key = {"x-api-key": call("POST", "/api/dashboard/api-keys", {"name": "fuzz"}, jwt)["rawKey"]}
    return {"platform_admin": admin, "jwt": jwt, "api_key": key, "anonymous": {}}


def _first_line(failure: BaseException) -> str:
    message = getattr(failure, "message", "") or str(failure)
    return " ".join(message.split())[:200]


def _error_body_problem(response: requests.Response) -> str | None:
    if response.status_code < 400:
        return None
    try:
        body: Any = response.json()
    except ValueError:
        return f"{response.status_code} body is not JSON: {response.text[:80]!r}"
    if not isinstance(body, dict) or not isinstance(body.get("error"), str) or not body["error"]:
        return f"{response.status_code} body is not {{'error': '...'}}: {str(body)[:80]}"
    return None


def fuzz(
    base_url: str,
    auths: dict[str, dict[str, str]],
    examples: int = 20,
    modes: tuple[GenerationMode, ...] = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE),
    skip: frozenset[str] = frozenset(),
) -> HttpReport:
    """Run ``examples`` generated requests per operation, mode and credential set; returns the counts."""
    schema = schemathesis.openapi.from_url(f"{base_url}/api/openapi.json")
    report, http = HttpReport(), requests.Session()
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.label in skip:
            continue
        report.operations += 1
        for mode in modes:
            for auth_name, headers in auths.items():
                _fuzz_operation(operation, mode, auth_name, headers, base_url, examples, http, report)
    return report


def _fuzz_operation(
    operation: Any,
    mode: GenerationMode,
    auth_name: str,
    headers: dict[str, str],
    base_url: str,
    examples: int,
    http: requests.Session,
    report: HttpReport,
) -> None:
    where = f"{operation.label} [{auth_name}, {mode.value}]"

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        try:
            response = case.call(base_url=base_url, session=http, headers=headers, timeout=TIMEOUT_S)
        except requests.RequestException as exc:
            report.add(f"{where} request failed", f"{type(exc).__name__}: {exc}")
            return
        report.requests += 1
        report.statuses[response.status_code] += 1
        if response.status_code >= 500:
            report.add(f"{where} {response.status_code}", f"{case.as_curl_command()} -> {response.text[:120]}")
        problem = _error_body_problem(response)
        if problem:
            report.add(f"{where} error body", f"{problem} <- {case.as_curl_command()}")
        if mode is GenerationMode.POSITIVE or response.status_code < 400:
            try:
                case.validate_response(response, checks=SCHEMA_CHECKS)
            except (Failure, FailureGroup) as exc:  # one failure or a group of them
                for failure in exc.exceptions if isinstance(exc, FailureGroup) else [exc]:
                    title = getattr(failure, "title", type(failure).__name__)
                    report.add(f"{where} {title}", f"{_first_line(failure)} <- {case.as_curl_command()}")

    try:
        run()
    except Unsatisfiable:
        pass  # nothing to make invalid (an operation without parameters or body in negative mode)
