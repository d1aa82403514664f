"""The operators' files in monitoring/. Grafana cannot be installed here, so the dashboard is
checked statically: every series it (and every alert rule) selects exists in /metrics after
real traffic. promtool (from Debian's prometheus package, scripts/setup_test_tools.sh) checks
the Prometheus files; the compose `monitoring` profile mounts what the files point at."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import app_client
from tools.server import free_port

ROOT = Path(__file__).resolve().parents[1]
MONITORING = ROOT / "monitoring"
DASHBOARD = MONITORING / "grafana" / "dashboards" / "shoprec.json"
PROMETHEUS = MONITORING / "prometheus" / "prometheus.yml"
ALERTS = MONITORING / "prometheus" / "alerts.yml"
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())

SELECTOR = re.compile(r"\b(shoprec_\w+)\s*(?:\{([^}]*)\})?")
MATCHER = re.compile(r'(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"')
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)\s*\(?\s*(?:\w+\()*\s*(shoprec_\w+)")


def queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    rules = yaml.safe_load(ALERTS.read_text())
    return exprs + [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def series(metrics_text: str) -> dict[str, list[dict[str, str]]]:
    """Sample name (``_bucket``, ``_count``, ``_total`` included) -> label sets."""
    out: dict[str, list[dict[str, str]]] = {}
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append(dict(sample.labels))
    return out


def matches(labels: dict[str, str], matcher: tuple[str, str, str]) -> bool:
    name, op, value = matcher
    actual = labels.get(name, "")
    found = {"=": actual == value, "!=": actual != value}.get(op)
    if found is None:
        found = re.fullmatch(value, actual) is not None
        found = found if op == "=~" else not found
    return found


async def _traffic(http) -> None:
    """Every kind of answer the dashboard shows: both strategies, accepted, duplicate and
    rejected feedback, 4xx answers."""
    await http.post("/v1/recommendations", json={"k": 3})  # popular
    item = (await http.post("/v1/recommendations", json={"k": 1})).json()["items"][0]["item_id"]
    await http.post("/v1/recommendations", json={"items": [item], "k": 3})  # personalized
    event = {"user_id": "dash-u", "item_id": item, "event": "view", "event_id": "dash-e1"}
    for _ in range(2):  # accepted, then duplicate
        assert (await http.post("/v1/feedback", json=event)).status_code == 202
    assert (await http.post("/v1/feedback", json={"user_id": "dash-u"})).status_code == 422
    assert (await http.get("/v1/items/no-such-item")).status_code == 404


async def test_every_series_the_dashboard_and_alerts_select_is_exported(settings_factory, redis_client):
    async with app_client(settings_factory()) as http:
        await _traffic(http)
        exported = series((await http.get("/metrics")).text)
    # A replica whose Redis is down answers feedback 503: the 5xx series of the error panels.
    async with app_client(settings_factory(redis_url=f"redis://127.0.0.1:{free_port()}/0")) as http:
        event = {"user_id": "dash-u", "item_id": "dash-i", "event": "view"}
        assert (await http.post("/v1/feedback", json=event)).status_code == 503
        for name, label_sets in series((await http.get("/metrics")).text).items():
            exported.setdefault(name, []).extend(label_sets)
    exprs = queries()
    assert len(exprs) >= 10
    checked = set()
    for expr in exprs:
        for name, inside in SELECTOR.findall(expr):
            assert name in exported, f"{name} (in {expr!r}) is not in /metrics"
            wanted = MATCHER.findall(inside or "")
            assert any(all(matches(labels, m) for m in wanted) for labels in exported[name]), (
                f"no {name} series matches {wanted} (in {expr!r})"
            )
            checked.add(name)
        for grouping, name in GROUPING.findall(expr):
            for label in filter(None, (word.strip() for word in grouping.split(","))):
                assert any(label in labels for labels in exported[name]), f"{name} has no label {label!r}"
    # The list: rate and latency per route, errors by status, feedback outcomes,
    # strategies, model version, Redis state.
    assert checked >= {
        "shoprec_request_seconds_count",
        "shoprec_request_seconds_bucket",
        "shoprec_feedback_events_total",
        "shoprec_recommendations_total",
        "shoprec_model_info",
        "shoprec_redis_up",
    }


async def test_metrics_say_whether_redis_answers(settings_factory, redis_client):
    for redis_url, up in ((None, 1.0), (f"redis://127.0.0.1:{free_port()}/0", 0.0)):
        settings = settings_factory(**({"redis_url": redis_url} if redis_url else {}))
        async with app_client(settings) as http:
            exported = (await http.get("/metrics")).text
        assert f"shoprec_redis_up {up}" in exported


def promtool() -> str:
    for candidate in (ROOT / "build" / "tools" / "promtool", shutil.which("promtool")):
        if candidate and Path(candidate).exists():
            return str(candidate)
    message = "promtool missing: `make test` extracts it (scripts/setup_test_tools.sh)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def test_promtool_accepts_the_prometheus_config_and_rules():
    checked = subprocess.run(
        [promtool(), "check", "config", str(PROMETHEUS)], capture_output=True, text=True, timeout=60
    )
    output = checked.stdout + checked.stderr
    assert checked.returncode == 0, output
    assert "SUCCESS" in output and "2 rules found" in output, output


def test_monitoring_profile_provisions_prometheus_and_grafana():
    services = COMPOSE["services"]
    prometheus, grafana = services["prometheus"], services["grafana"]
    assert prometheus["profiles"] == grafana["profiles"] == ["monitoring"]
    assert all(
        "monitoring" not in s.get("profiles", [])
        for n, s in services.items()
        if n not in {"prometheus", "grafana"}
    )
    mounts = {}
    for service in (prometheus, grafana):
        for volume in service["volumes"]:
            source, target = volume.split(":")[:2]
            if source.startswith("./"):
                assert (ROOT / source).exists(), source
                mounts[target] = ROOT / source
    # Prometheus reads its config where the mount puts it and finds the API replicas by name.
    config_arg = next(a for a in prometheus["command"] if a.startswith("--config.file="))
    config_path = Path(config_arg.split("=", 1)[1])
    assert mounts[str(config_path.parent)] / config_path.name == PROMETHEUS
    scrape = yaml.safe_load(PROMETHEUS.read_text())["scrape_configs"][0]
    (sd,) = scrape["dns_sd_configs"]
    api_port = services["api"]["ports"][0]
    assert sd["names"] == ["api"] and str(sd["port"]) == api_port and scrape["metrics_path"] == "/metrics"
    # Grafana: the datasource points at the prometheus service, the dashboard provider at the
    # folder the dashboard JSON is mounted in.
    provisioning = mounts["/etc/grafana/provisioning"]
    (datasource,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())[
        "datasources"
    ]
    assert datasource["url"] == "http://prometheus:9090" and datasource["type"] == "prometheus"
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "shoprec.yml").read_text())["providers"]
    assert mounts[provider["options"]["path"]] / DASHBOARD.name == DASHBOARD
    dashboard = json.loads(DASHBOARD.read_text())
    uids = {t["datasource"]["uid"] for p in dashboard["panels"] for t in p["targets"]}
    assert uids == {datasource["uid"]}
