#!/usr/bin/env python3
"""Validates the Kubernetes manifests in deploy/k8s/ without a cluster (scripts/k8s-validate).

Every document of every `*.yaml` there is checked, and any failure fails the run:

1. Built-in kinds against the Kubernetes OpenAPI schemas that kubernetes-validate bundles, in
   strict mode (an unknown field is an error, as `kubectl apply --validate=strict` makes it), for
   each release in KUBERNETES_VERSIONS.
2. Custom resources against the CRDs vendored in tools/k8s/crds/ (KEDA's ScaledObject): the
   CRD's openAPIV3Schema, made strict the same way (an object schema that lists properties and
   does not preserve unknown fields rejects others). A kind known to neither is an error, not the
   warning kubernetes-validate gives.
3. Consistency that no schema sees: no document names a namespace (the manifests are applied
   with `kubectl apply -n`), every ConfigMap/Secret/Deployment a document refers to is defined,
   every selector matches a pod template's labels, and every `rushline_*` metric a query uses is
   one the programs export (their telemetry.rs).

Usage: validate.py [DIR]   (default: deploy/k8s of this repository). Exits 0 or 1.
"""

from __future__ import annotations

import copy
import re
import sys
from pathlib import Path

import jsonschema
import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parent.parent.parent
CRDS = Path(__file__).resolve().parent / "crds"
# The oldest Kubernetes release the manifests support and the newest the checker bundles.
KUBERNETES_VERSIONS = ["1.30.0", "1.37.0"]
TELEMETRY = ["crates/api/src/telemetry.rs", "crates/worker/src/telemetry.rs"]


def strict(schema: dict) -> dict:
    """`schema` with unknown properties refused wherever it lists properties and does not say
    `x-kubernetes-preserve-unknown-fields` (what the API server's strict field validation does)."""
    schema = copy.deepcopy(schema)

    def walk(node):
        if isinstance(node, dict):
            if ("properties" in node and "additionalProperties" not in node
                    and not node.get("x-kubernetes-preserve-unknown-fields")):
                node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return schema


def crd_schemas(directory: Path = CRDS) -> dict[tuple[str, str], dict]:
    """(apiVersion, kind) -> strict schema, from every CRD under `directory`."""
    schemas = {}
    for path in sorted(directory.glob("*.yaml")):
        for crd in yaml.safe_load_all(path.read_text()):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                schema = version["schema"]["openAPIV3Schema"]
                schemas[(f"{group}/{version['name']}", kind)] = strict(schema)
    return schemas


def schema_problems(doc: dict, crds: dict) -> list[str]:
    """What the schemas say is wrong with one document."""
    key = (doc.get("apiVersion"), doc.get("kind"))
    if key in crds:
        validator = jsonschema.Draft7Validator(crds[key])
        return [f"{'.'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
                for e in sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))]
    problems = []
    for version in KUBERNETES_VERSIONS:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            return [f"no schema for {key[1]} {key[0]} (Kubernetes {version}) nor a CRD in "
                    f"{CRDS.relative_to(ROOT)}"]
        except kubernetes_validate.ValidationError as e:
            path = ".".join(map(str, e.path)) or "(root)"
            problems.append(f"Kubernetes {version}: {path}: {e.message}")
    return problems


def pod_labels(doc: dict) -> dict:
    return doc.get("spec", {}).get("template", {}).get("metadata", {}).get("labels", {}) or {}


def consistency_problems(docs: list[tuple[str, dict]], exported: set[str]) -> list[str]:
    """Cross-document checks (see the module doc, 3)."""
    problems = []
    defined = {(d.get("kind"), d.get("metadata", {}).get("name")) for _, d in docs}
    templates = [pod_labels(d) for _, d in docs if pod_labels(d)]

    def selects_a_pod(selector: dict) -> bool:
        return any(all(labels.get(k) == v for k, v in selector.items()) for labels in templates)

    for where, doc in docs:
        name = f"{where}: {doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        if "namespace" in doc.get("metadata", {}):
            problems.append(f"{name}: names a namespace (apply with kubectl -n instead)")
        spec = doc.get("spec", {}) or {}
        target = spec.get("scaleTargetRef")
        if target and ("Deployment", target.get("name")) not in defined:
            problems.append(f"{name}: scales {target.get('name')}, which no document defines")
        for container in spec.get("template", {}).get("spec", {}).get("containers", []):
            for source in container.get("envFrom", []):
                for kind, field in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
                    ref = source.get(field, {}).get("name")
                    if ref and (kind, ref) not in defined:
                        problems.append(f"{name}: envFrom {kind} {ref}, which no document defines")
        selector = spec.get("selector")
        if isinstance(selector, dict):
            selector = selector.get("matchLabels", selector)
            if selector and not selects_a_pod(selector):
                problems.append(f"{name}: selector {selector} matches no pod template")
        for trigger in spec.get("triggers", []):
            query = trigger.get("metadata", {}).get("query", "")
            for metric in re.findall(r"\brushline_[a-z0-9_]+", query):
                if metric not in exported:
                    problems.append(f"{name}: query uses {metric}, which no program exports")
    return problems


def exported_metrics() -> set[str]:
    names = set()
    for path in TELEMETRY:
        names.update(re.findall(r'"(rushline_[a-z0-9_]+)"', (ROOT / path).read_text()))
    return names


def validate(directory: Path) -> list[str]:
    """Every problem of the manifests in `directory`, one line each."""
    crds = crd_schemas()
    files = sorted(directory.glob("*.yaml"))
    if not files:
        return [f"{directory}: no *.yaml manifests"]
    docs, problems = [], []
    for path in files:
        try:
            loaded = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
        except yaml.YAMLError as e:
            problems.append(f"{path.name}: not YAML: {e}")
            continue
        for doc in loaded:
            where = f"{path.name} {doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
            problems += [f"{where}: {p}" for p in schema_problems(doc, crds)]
            docs.append((path.name, doc))
    problems += consistency_problems(docs, exported_metrics())
    if not problems:
        print(f"[k8s-validate] {len(docs)} resources in {len(files)} files valid against "
              f"Kubernetes {' and '.join(KUBERNETES_VERSIONS)} (strict) and the CRDs in "
              f"{CRDS.relative_to(ROOT)}", file=sys.stderr)
    return problems


def main() -> int:
    directory = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "deploy" / "k8s"
    problems = validate(directory)
    for problem in problems:
        print(f"[k8s-validate] FAILED: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
