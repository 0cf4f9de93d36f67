"""Validate Kubernetes manifests against the API's JSON schemas, offline.

Run by the deploy-tools virtualenv's Python (it needs `jsonschema` and the schemas bundled by the
`kubernetes-validate` package); the tests call it as a subprocess::

    python k8s_validate.py --kube-version 1.29 --kube-version 1.37 --crd-dir DIR FILE...

Built-in kinds use the *strict* schemas (unknown fields are errors, as with
``kubectl apply --validate=strict``). Custom resources (ServiceMonitor, PrometheusRule, KEDA
ScaledObject, TriggerAuthentication) use the ``openAPIV3Schema`` of their CustomResourceDefinition
files in ``--crd-dir``, made strict the same way (an object with ``properties`` accepts no other
field unless it says ``x-kubernetes-preserve-unknown-fields``).

Prints one JSON object: ``{"documents": [{"source", "kind", "name", "apiVersion", "checked":
[versions or "crd"], "errors": [...]}]}``. A kind with no schema is an error, never a pass.
Exit status 0 when every document validated, 1 otherwise, 2 on bad usage.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import referencing
import yaml

SCHEMA_ROOT = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"


def _strict_dir(version: str) -> Path:
    """The bundled strict schema directory for a Kubernetes minor version ("1.29")."""
    path = SCHEMA_ROOT / f"v{version}.0-local-strict"
    if not path.is_dir():
        have = sorted(p.name for p in SCHEMA_ROOT.iterdir() if p.name.endswith("-strict"))
        raise SystemExit(f"no bundled schemas for Kubernetes {version}; have {have}")
    return path


class BuiltinSchemas:
    def __init__(self, version: str):
        self.version = version
        self.dir = _strict_dir(version)
        definitions = json.loads((self.dir / "_definitions.json").read_text())
        self._registry = referencing.Resource.from_contents(definitions) @ referencing.Registry()
        self._cache: dict[str, jsonschema.protocols.Validator | None] = {}

    def validator(self, api_version: str, kind: str) -> jsonschema.protocols.Validator | None:
        # "rbac.authorization.k8s.io/v1" -> "rbac-v1"; "v1" -> "v1" (the package's file naming)
        group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
        name = f"{kind.lower()}-{group_version}.json"
        if name not in self._cache:
            path = self.dir / name
            if not path.is_file():
                self._cache[name] = None
            else:
                schema = json.loads(path.read_text())
                registry = referencing.Resource.from_contents(schema) @ self._registry
                self._cache[name] = jsonschema.Draft202012Validator(schema, registry=registry)
        return self._cache[name]


def _strict_crd_schema(node: Any) -> Any:
    """An openAPIV3Schema as JSON Schema, with the API server's pruning made an error."""
    if isinstance(node, list):
        return [_strict_crd_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("properties", "patternProperties"):
            out[key] = {name: _strict_crd_schema(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not", "allOf", "anyOf", "oneOf"):
            out[key] = _strict_crd_schema(value)
        else:
            out[key] = value
    if node.get("x-kubernetes-int-or-string") and "anyOf" not in out:
        out["type"] = ["integer", "string"]
    if node.get("nullable") and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    if (
        out.get("type") == "object"
        and "properties" in out
        and "additionalProperties" not in out
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def load_crds(crd_dir: Path) -> dict[tuple[str, str], jsonschema.protocols.Validator]:
    """(apiVersion, kind) -> validator, from every CRD YAML in the directory."""
    validators: dict[tuple[str, str], jsonschema.protocols.Validator] = {}
    for path in sorted(crd_dir.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            group = doc["spec"]["group"]
            kind = doc["spec"]["names"]["kind"]
            for version in doc["spec"]["versions"]:
                schema = (version.get("schema") or {}).get("openAPIV3Schema")
                if schema is None or not version.get("served", True):
                    continue
                strict = _strict_crd_schema(schema)
                validators[(f"{group}/{version['name']}", kind)] = jsonschema.Draft7Validator(
                    strict
                )
    return validators


def _errors(validator: jsonschema.protocols.Validator, doc: dict[str, Any]) -> list[str]:
    found = sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    return [f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in found]


def validate_documents(
    docs: list[tuple[str, dict[str, Any]]],
    versions: list[str],
    crds: dict[tuple[str, str], jsonschema.protocols.Validator],
) -> list[dict[str, Any]]:
    builtins = [BuiltinSchemas(v) for v in versions]
    results = []
    for source, doc in docs:
        api_version, kind = doc.get("apiVersion", ""), doc.get("kind", "")
        name = (doc.get("metadata") or {}).get("name", "")
        result: dict[str, Any] = {
            "source": source,
            "apiVersion": api_version,
            "kind": kind,
            "name": name,
            "checked": [],
            "errors": [],
        }
        crd = crds.get((api_version, kind))
        if crd is not None:
            result["checked"].append("crd")
            result["errors"] += _errors(crd, doc)
        else:
            for schemas in builtins:
                validator = schemas.validator(api_version, kind)
                if validator is None:
                    result["errors"].append(
                        f"no schema for {api_version} {kind} in Kubernetes {schemas.version} "
                        "(nor among the CRDs)"
                    )
                    continue
                result["checked"].append(schemas.version)
                result["errors"] += [
                    f"[k8s {schemas.version}] {e}" for e in _errors(validator, doc)
                ]
        results.append(result)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--kube-version",
        action="append",
        required=True,
        help="Kubernetes minor version to validate against, e.g. 1.37 (repeatable)",
    )
    parser.add_argument(
        "--crd-dir",
        type=Path,
        required=True,
        help="directory of CustomResourceDefinition YAML files",
    )
    parser.add_argument("files", nargs="+", type=Path, help="multi-document YAML manifests")
    args = parser.parse_args(argv)

    crds = load_crds(args.crd_dir)
    docs: list[tuple[str, dict[str, Any]]] = []
    for path in args.files:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                docs.append((str(path), doc))
    results = validate_documents(docs, args.kube_version, crds)
    json.dump(
        {"crd_kinds": sorted(f"{a} {k}" for a, k in crds), "documents": results},
        sys.stdout,
        indent=1,
    )
    sys.stdout.write("\n")
    return 1 if any(r["errors"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
