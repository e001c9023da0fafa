#!/usr/bin/env python3
"""Lints and renders helm/wagate without a helm binary, then validates every
rendered resource against the Kubernetes schemas.

    pip install helm-python-sdk kubernetes-validate pyyaml
    python3 .ci/helm-check.py
"""
import os
import subprocess
import sys
import tempfile

import helm_python
import yaml

VALUES = {
    "database": {"url": "postgres://u:p@db:5432/wagate"},
    "redis": {"url": "redis://redis:6379"},
    "secrets": {"jwtSecret": "j", "workerAuthToken": "w", "internalToken": "i", "edgeToken": "e"},
}

# The defaults, and TLS + a /metrics token turned on.
VALUES_TLS = {**VALUES, "secrets": {**VALUES["secrets"], "metricsToken": "m"},
              "tls": {"enabled": True, "secretName": "wagate-tls", "clientAuth": "required"}}

out = tempfile.mkdtemp()
files = []
for values in (VALUES, VALUES_TLS):
    lint = helm_python.lint("helm/wagate", values, strict=True)
    for m in lint.get("messages", []):
        print(f"lint: {m['path']}: {m['error']}")
    if lint.get("errors"):
        sys.exit(f"helm lint failed: {lint['errors']}")

    rendered = helm_python.Chart.load("helm/wagate").render(values)
    for name, text in rendered.items():
        for doc in yaml.safe_load_all(text):
            if doc:
                path = os.path.join(out, f"{len(files)}.yaml")
                with open(path, "w") as f:
                    yaml.safe_dump(doc, f)
                files.append(path)
r = subprocess.run(["kubernetes-validate", "-k", "1.30.0", "--strict", *files])
sys.exit(r.returncode)
