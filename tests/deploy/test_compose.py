"""compose.yaml: valid against the Compose Specification's schema, and the recipe's promises
(read-only containers, migrations before the API, health checks, N API and M workers), with
.env.example's placeholders refused by production until they are replaced."""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema
import pytest
from pydantic import ValidationError

from alttext.config import Settings
from tests.deploy.recipe import (
    CADDYFILE,
    COMPOSE,
    ENV_EXAMPLE,
    SCHEMA,
    compose,
    dockerfile_stages,
    env_file,
    exec_form,
    interpolate,
    variables,
)

APP = ("migrate", "api", "worker")  # the services that run the alttext image


def services() -> dict[str, dict[str, Any]]:
    found = compose()["services"]
    assert isinstance(found, dict)
    return found


def test_valid_against_the_compose_specification() -> None:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    errors = sorted(
        jsonschema.Draft7Validator(schema).iter_errors(compose()), key=lambda e: list(e.path)
    )
    assert [f"{list(e.path)}: {e.message}" for e in errors] == []


def test_the_schema_catches_a_mistake() -> None:
    schema = json.loads(SCHEMA.read_text())
    broken = compose()
    broken["services"]["api"]["depends_on"]["migrate"]["condition"] = "service_finished"
    broken["services"]["worker"]["read_onyl"] = True
    assert len(list(jsonschema.Draft7Validator(schema).iter_errors(broken))) == 2


def test_every_container_has_a_read_only_root_and_a_tmpfs() -> None:
    for name, service in services().items():
        assert service.get("read_only") is True, name
        assert service.get("tmpfs"), name


def test_the_app_runs_the_image_s_commands_unprivileged() -> None:
    for name in APP:
        service = services()[name]
        assert service["build"] == "."
        assert service["command"] == [name]
        assert service["cap_drop"] == ["ALL"]
        assert "no-new-privileges:true" in service["security_opt"]
        assert service["init"] is True
        assert "/tmp:size=64m" in service["tmpfs"]
        # The user is the image's (USER in the Dockerfile), never overridden to root.
        assert "user" not in service
    final = dockerfile_stages()[-1]
    assert final.all("USER")


def test_migrations_run_once_before_the_api_and_workers_start() -> None:
    s = services()
    assert s["migrate"]["restart"] == "no"
    assert s["migrate"]["depends_on"] == {"db": {"condition": "service_healthy"}}
    for name in ("api", "worker"):
        depends = s[name]["depends_on"]
        assert depends["migrate"] == {"condition": "service_completed_successfully"}
        assert depends["db"] == {"condition": "service_healthy"}
        assert depends["redis"] == {"condition": "service_healthy"}
    assert s["proxy"]["depends_on"] == {"api": {"condition": "service_healthy"}}


def test_health_checks() -> None:
    s = services()
    for name in ("db", "redis", "api"):
        test = s[name]["healthcheck"]["test"]
        assert test[0] in ("CMD", "CMD-SHELL"), name
    assert "pg_isready" in s["db"]["healthcheck"]["test"]
    assert "redis-cli ping" in s["redis"]["healthcheck"]["test"][1]
    api = s["api"]["healthcheck"]["test"]
    assert api[:3] == ["CMD", "python", "-c"]
    assert "/healthz" in api[3]
    # The same check as the image's HEALTHCHECK.
    (image_check,) = dockerfile_stages()[-1].all("HEALTHCHECK")
    assert exec_form(image_check.partition("CMD ")[2]) == api[1:]
    # Worker and migrate serve no HTTP: the image's check is turned off, not left failing.
    for name in ("worker", "migrate"):
        assert s[name]["healthcheck"] == {"disable": True}, name


def test_n_api_processes_and_m_workers_on_one_postgresql_and_one_redis() -> None:
    s = services()
    assert s["api"]["deploy"]["replicas"] == "${ALTTEXT_API_REPLICAS:-2}"
    assert s["worker"]["deploy"]["replicas"] == "${ALTTEXT_WORKER_REPLICAS:-1}"
    assert "replicas" not in s["db"].get("deploy", {})
    assert "replicas" not in s["redis"].get("deploy", {})
    # Replicas cannot share a host port: only the proxy publishes, and spreads the load.
    assert [name for name, service in s.items() if service.get("ports")] == ["proxy"]
    caddy = CADDYFILE.read_text()
    assert re.search(r"name api\s+port 8000", caddy)
    # PostgreSQL and Redis sit on an internal network only.
    assert compose()["networks"]["data"] == {"internal": True}
    for name in ("db", "redis"):
        assert s[name]["networks"] == ["data"]
    # Redis keeps nothing on disk (docs/deploy.md: it needs no backup); PostgreSQL has a volume.
    assert '--save ""' in s["redis"]["command"][2]
    assert "--appendonly no" in s["redis"]["command"][2]
    assert s["db"]["volumes"] == ["pgdata:/var/lib/postgresql/data"]


def test_every_variable_is_in_env_example() -> None:
    used = variables(COMPOSE.read_text())
    optional = {"ALTTEXT_IMAGE"}  # has a default and is commented in .env.example
    example = env_file()
    assert used - optional <= set(example), used - optional - set(example)
    assert "ALTTEXT_IMAGE" in ENV_EXAMPLE.read_text()


def app_environment(env: dict[str, str]) -> dict[str, str]:
    """What an alttext container of compose.yaml gets: .env, then `environment:` interpolated."""
    api = services()["api"]
    return {**env, **{k: interpolate(str(v), env) for k, v in api["environment"].items()}}


def settings_from(environment: dict[str, str]) -> Settings:
    values = {
        k.removeprefix("ALTTEXT_").lower(): v
        for k, v in environment.items()
        if k.startswith("ALTTEXT_")
    }
    return Settings(_env_file=None, env="production", **values)  # type: ignore[call-arg]


def test_env_example_is_refused_by_production_until_its_placeholders_are_replaced() -> None:
    example = env_file()
    with pytest.raises(ValidationError) as caught:
        settings_from(app_environment(example))
    refused = str(caught.value)
    for name in (
        "ALTTEXT_SECRET_KEY",
        "ALTTEXT_SMTP_URL",
        "ALTTEXT_DATABASE_URL",
        "ALTTEXT_REDIS_URL",
    ):
        assert name in refused
    filled = {
        key: value.replace("change-me", f"real-{key.lower().replace('_', '-')}-0123456789abcdef")
        for key, value in example.items()
    }
    settings = settings_from(app_environment(filled))
    assert settings.public_url == "https://alttext.example.com"
    assert settings.database_url.startswith("postgresql+asyncpg://alttext:real-")
    assert settings.redis_url is not None
    assert settings.redis_url.endswith("@redis:6379/0")


def test_required_variables_stop_compose_with_a_message() -> None:
    example = env_file()
    del example["POSTGRES_PASSWORD"]
    with pytest.raises(KeyError, match=r"set POSTGRES_PASSWORD in \.env"):
        app_environment(example)
