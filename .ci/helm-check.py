#!/usr/bin/env python3
"""Lints and renders helm/wagate without a helm binary, then validates every
rendered resource against the Kubernetes schemas, and checks what the chart
must guarantee: every required secret is refused when missing, reaches the
control plane from the Secret, and /metrics is reachable (pod address, port,
token, annotations or ServiceMonitor).

    pip install helm-python-sdk kubernetes-validate pyyaml
    python3 .ci/helm-check.py
"""
import json
import os
import subprocess
import sys
import tempfile

import helm_python
import yaml

SECRETS = {
    "jwtSecret": "j", "workerAuthToken": "w", "internalToken": "i", "edgeToken": "e",
    "authStateKey": "a", "metricsToken": "m",
}
VALUES = {
    "database": {"url": "postgres://u:p@db:5432/wagate"},
    "redis": {"url": "redis://redis:6379"},
    "secrets": SECRETS,
}

# TLS on, the ServiceMonitor, the alert rules and the dashboard.
VALUES_TLS = {**VALUES,
              "tls": {"enabled": True, "secretName": "wagate-tls", "clientAuth": "required"},
              "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
                          "prometheusRule": {"enabled": True}, "grafanaDashboard": {"enabled": True}}}

# Metrics off: no token needed, no metrics port.
VALUES_NO_METRICS = {**VALUES, "secrets": {k: v for k, v in SECRETS.items() if k != "metricsToken"},
                     "metrics": {"enabled": False}}

# Workers on: one Deployment per instance, tokens per worker, TLS.
VALUES_WORKERS = {**VALUES_TLS,
                  "worker": {"enabled": True, "tokensSecret": "wagate-worker-tokens",
                             "instances": [{"id": "wa-1"}, {"id": "wa-2", "maxSessions": 20}]}}

# Secrets the chart must refuse to render without (value key → words the error must contain).
REQUIRED = {
    "jwtSecret": "secrets.jwtSecret",
    "internalToken": "secrets.internalToken",
    "edgeToken": "secrets.edgeToken",
    "authStateKey": "secrets.authStateKey",
    "metricsToken": "secrets.metricsToken",
}

# Kinds whose schema is not Kubernetes' own (checked below by hand).
CRDS = {"ServiceMonitor", "PrometheusRule"}

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print(f"FAIL: {what}")


def render(values):
    return helm_python.Chart.load("helm/wagate").render(values)


def docs(rendered):
    return [d for text in rendered.values() for d in yaml.safe_load_all(text) if d]


def find(objs, kind, suffix):
    return next((d for d in objs if d["kind"] == kind and d["metadata"]["name"].endswith(suffix)), None)


def env_of(deployment):
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e for e in container.get("env", [])}, container


out = tempfile.mkdtemp()
files = []
rendered_sets = {}
for name, values in (("default", VALUES), ("tls", VALUES_TLS), ("no-metrics", VALUES_NO_METRICS),
                     ("workers", VALUES_WORKERS)):
    lint = helm_python.lint("helm/wagate", values, strict=True)
    for m in lint.get("messages", []):
        print(f"lint: {m['path']}: {m['error']}")
    if lint.get("errors"):
        sys.exit(f"helm lint failed: {lint['errors']}")

    objs = docs(render(values))
    rendered_sets[name] = objs
    for doc in objs:
        if doc["kind"] in CRDS:
            continue
        path = os.path.join(out, f"{len(files)}.yaml")
        with open(path, "w") as f:
            yaml.safe_dump(doc, f)
        files.append(path)

# Every required secret: rendering without it fails and names it.
for key, words in REQUIRED.items():
    values = {**VALUES, "secrets": {k: v for k, v in SECRETS.items() if k != key}}
    try:
        render(values)
        check(False, f"rendering without secrets.{key} must fail")
    except Exception as e:  # helm_python.errors.HelmRenderError
        check(words in str(e), f"error without secrets.{key} names it: {e}")

for name, objs in rendered_sets.items():
    metrics_on = name != "no-metrics"
    secret = find(objs, "Secret", "-secrets")
    cp = find(objs, "Deployment", "-control-plane")
    edge = find(objs, "Deployment", "-edge")
    config = find(objs, "ConfigMap", "-config")
    cp_env, cp_container = env_of(cp)
    edge_env, edge_container = env_of(edge)

    # The auth-state key: one value for every replica, from the Secret.
    check(secret["stringData"].get("auth-state-key") == "a", f"{name}: Secret has auth-state-key")
    ref = cp_env.get("WAGATE_AUTH_STATE_KEY", {}).get("valueFrom", {}).get("secretKeyRef", {})
    check(ref.get("key") == "auth-state-key" and not ref.get("optional"),
          f"{name}: control plane reads WAGATE_AUTH_STATE_KEY from the Secret (not optional)")
    for var, key in (("JWT_SECRET", "jwt-secret"), ("WAGATE_INTERNAL_TOKEN", "internal-token")):
        ref = cp_env.get(var, {}).get("valueFrom", {}).get("secretKeyRef", {})
        check(ref.get("key") == key and not ref.get("optional"), f"{name}: control plane reads {var}")
    check("WAGATE_DEV" not in cp_env and "WAGATE_DEV" not in config["data"], f"{name}: no dev mode")

    # /metrics: on the pod address behind the token, with a port and a way to be found.
    listen = config["data"].get("WAGATE_METRICS_LISTEN")
    ports = {p["name"]: p["containerPort"] for p in cp_container["ports"]}
    edge_ports = {p["name"]: p["containerPort"] for p in edge_container["ports"]}
    annotations = cp["spec"]["template"]["metadata"].get("annotations") or {}
    if metrics_on:
        check(listen == "0.0.0.0:9090", f"{name}: control-plane /metrics on the pod address ({listen})")
        check(config["data"].get("WAGATE_EDGE_METRICS_LISTEN") == "0.0.0.0:9091", f"{name}: edge /metrics")
        check(ports.get("metrics") == 9090 and edge_ports.get("metrics") == 9091, f"{name}: metrics ports")
        for env in (cp_env, edge_env):
            ref = env.get("WAGATE_METRICS_TOKEN", {}).get("valueFrom", {}).get("secretKeyRef", {})
            check(ref.get("key") == "metrics-token" and ref.get("optional") is False,
                  f"{name}: WAGATE_METRICS_TOKEN from the Secret, not optional")
        check(annotations.get("prometheus.io/scrape") == "true" and annotations.get("prometheus.io/port") == "9090",
              f"{name}: scrape annotations {annotations}")
        for suffix in ("-control-plane", "-edge"):
            svc = find(objs, "Service", suffix)
            check(any(p["name"] == "metrics" for p in svc["spec"]["ports"]), f"{name}: Service{suffix} metrics port")
    else:
        check(listen == "", f"{name}: metrics off ({listen!r})")
        check("metrics" not in ports and not annotations, f"{name}: no metrics port or annotations")

    # Workers: off by default; one Deployment per id, never two pods of one id.
    workers = [d for d in objs if d["kind"] == "Deployment" and "-worker-" in d["metadata"]["name"]]
    if name == "workers":
        check(len(workers) == 2, f"workers: one Deployment per instance ({len(workers)})")
        for w, wid, cap in zip(workers, ("wa-1", "wa-2"), ("50", "20")):
            env, container = env_of(w)
            check(w["spec"]["replicas"] == 1 and w["spec"]["strategy"]["type"] == "Recreate",
                  f"workers: {wid} runs one pod at a time")
            check(env["WAGATE_WORKER_ID"]["value"] == wid, f"workers: {wid} id")
            check(env["WAGATE_WORKER_DRIVER"]["value"] == "whatsapp", f"workers: {wid} on the whatsapp driver")
            check(env["WAGATE_WORKER_MAX_SESSIONS"]["value"] == cap, f"workers: {wid} max sessions")
            ref = env["WORKER_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"]
            check(ref == {"name": "wagate-worker-tokens", "key": wid}, f"workers: {wid} token from its key: {ref}")
            check(env["WAGATE_WORKER_CONTROL_PLANE_URL"]["value"].startswith("https://"), f"workers: {wid} over TLS")
            check("readinessProbe" in container and "livenessProbe" in container, f"workers: {wid} probes")
            check(env["WAGATE_WORKER_HEALTH_FILE"]["value"] in container["readinessProbe"]["exec"]["command"][2],
                  f"workers: {wid} probes read the health file")
    else:
        check(not workers, f"{name}: no workers unless worker.enabled")

    monitor = find(objs, "ServiceMonitor", "")
    if name in ("tls", "workers"):
        check(monitor is not None, "tls: ServiceMonitor rendered")
        if monitor:
            ep = monitor["spec"]["endpoints"][0]
            check(ep["port"] == "metrics" and ep["bearerTokenSecret"]["key"] == "metrics-token",
                  f"ServiceMonitor endpoint {ep}")
            check(monitor["metadata"]["labels"].get("release") == "prometheus", "ServiceMonitor labels")
            selector = monitor["spec"]["selector"]["matchLabels"]
            for suffix in ("-control-plane", "-edge"):
                labels = find(objs, "Service", suffix)["metadata"]["labels"]
                check(all(labels.get(k) == v for k, v in selector.items()), f"ServiceMonitor selects Service{suffix}")
    else:
        check(monitor is None, f"{name}: no ServiceMonitor unless asked for")

    # Alert rules and dashboard (their metric names are checked by a Rust
    # test, control-plane/src/telemetry/chart.rs).
    rule = find(objs, "PrometheusRule", "")
    board = find(objs, "ConfigMap", "-dashboard")
    if name == "tls":
        alerts = {r["alert"] for g in (rule or {}).get("spec", {}).get("groups", []) for r in g["rules"]}
        check({"WagateWorkerLost", "WagateSessionsReconnecting", "WagateWebhookBacklogOld", "WagateSendErrorRate",
               "WagateQuotaRefusalsSpiking", "WagateReplicaNotServing"} <= alerts, f"tls: alert rules {alerts}")
        try:
            panels = json.loads(board["data"]["wagate.json"])["panels"] if board else []
        except ValueError as e:
            panels = []
            check(False, f"tls: dashboard JSON: {e}")
        check(len(panels) >= 8 and board["metadata"]["labels"].get("grafana_dashboard") == "1", "tls: dashboard")
    else:
        check(rule is None and board is None, f"{name}: no alert rules or dashboard unless asked for")

r = subprocess.run(["kubernetes-validate", "-k", "1.30.0", "--strict", *files])
if failures:
    sys.exit(f"{len(failures)} chart check(s) failed")
sys.exit(r.returncode)
