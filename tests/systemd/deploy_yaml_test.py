#!/usr/bin/env python3
"""Checks the deployment examples under deploy/ (issue 10).

Usage: deploy_yaml_test.py SOURCE_DIR ZULIP_BRIDGE_BINARY

Every YAML file parses; the Kubernetes example keeps one replica, a state volume where the
config puts state_dir, probes on /healthz and /readyz, and a grace period above the flush
bound; the compose file's grace period too; and each bridge configuration shipped in deploy/
passes `zulip-bridge --check-config` (with its paths moved into a temporary directory).
Exit 77 (skip) without PyYAML, except under CI=true.
"""
import os
import re
import subprocess
import sys
import tempfile

try:
    import yaml
except ImportError:
    if os.environ.get("CI") == "true":
        print("FAIL: python3 yaml module missing (Debian package python3-yaml)", file=sys.stderr)
        sys.exit(1)
    print("SKIP: python3 yaml module missing (Debian package python3-yaml)", file=sys.stderr)
    sys.exit(77)

FLUSH_TIMEOUT_SECS = 30  # kafka.flush_timeout_secs default


def fail(message):
    print("FAIL: " + message, file=sys.stderr)
    sys.exit(1)


def load_all(path):
    with open(path, encoding="utf-8") as f:
        try:
            return [d for d in yaml.safe_load_all(f) if d is not None]
        except yaml.YAMLError as e:
            fail(f"{path}: {e}")


def check_config(binary, name, text):
    """Runs --check-config on a bridge configuration, with its files moved to a temp dir."""
    config = yaml.safe_load(text)
    with tempfile.TemporaryDirectory() as tmp:
        config["state_dir"] = os.path.join(tmp, "state")
        for i, account in enumerate(config["accounts"]):
            if "api_key_file" in account:
                key = os.path.join(tmp, f"key{i}")
                with open(key, "w", encoding="utf-8") as f:
                    f.write("test-api-key-0123456789\n")
                account["api_key_file"] = key
        path = os.path.join(tmp, "zulip-bridge.yaml")
        with open(path, "w", encoding="utf-8") as f:
            yaml.safe_dump(config, f)
        result = subprocess.run([binary, "--check-config", "--config", path],
                                capture_output=True, text=True, check=False)
        if result.returncode != 0:
            fail(f"{name}: --check-config exited {result.returncode}:\n{result.stderr}")
        if "test-api-key-0123456789" in result.stdout + result.stderr:
            fail(f"{name}: --check-config printed the API key")
    print(f"ok: {name} passes --check-config")


def seconds(value):
    match = re.fullmatch(r"(\d+)s?", str(value))
    if not match:
        fail(f"cannot read a duration from {value!r}")
    return int(match.group(1))


def main():
    source_dir, binary = sys.argv[1], sys.argv[2]
    deploy = os.path.join(source_dir, "deploy")
    paths = []
    for root, _, files in os.walk(deploy):
        paths += [os.path.join(root, f) for f in files if f.endswith((".yml", ".yaml"))]
    if not paths:
        fail(f"no YAML files under {deploy}")
    for path in sorted(paths):
        load_all(path)
        print(f"ok: {os.path.relpath(path, source_dir)} parses")

    # Kubernetes.
    docs = load_all(os.path.join(deploy, "kubernetes", "zulip-bridge.yaml"))
    by_kind = {d["kind"]: d for d in docs}
    for kind in ("ConfigMap", "Secret", "Service", "StatefulSet"):
        if kind not in by_kind:
            fail(f"kubernetes example lacks a {kind}")
    sts = by_kind["StatefulSet"]["spec"]
    if sts["replicas"] != 1:
        fail("the StatefulSet must keep exactly one replica")
    pod = sts["template"]["spec"]
    if pod["terminationGracePeriodSeconds"] <= FLUSH_TIMEOUT_SECS:
        fail("terminationGracePeriodSeconds must exceed kafka.flush_timeout_secs")
    container = pod["containers"][0]
    if container["livenessProbe"]["httpGet"]["path"] != "/healthz":
        fail("liveness must probe /healthz")
    if container["readinessProbe"]["httpGet"]["path"] != "/readyz":
        fail("readiness must probe /readyz")
    if not container["securityContext"]["readOnlyRootFilesystem"]:
        fail("the container must run with a read-only root file system")
    config_text = by_kind["ConfigMap"]["data"]["zulip-bridge.yaml"]
    config = yaml.safe_load(config_text)
    claims = {t["metadata"]["name"] for t in sts["volumeClaimTemplates"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    config_mounts = [m for m in container["volumeMounts"] if m["name"] == "config"]
    if len(config_mounts) != 1 or "subPath" in config_mounts[0]:
        fail("mount the ConfigMap as a directory without subPath (a subPath mount never sees an "
             "updated ConfigMap, so a reload would read the old file)")
    args = container["args"]
    config_path = args[args.index("--config") + 1]
    if os.path.dirname(config_path) != config_mounts[0]["mountPath"]:
        fail(f"--config {config_path} is not in the ConfigMap's mount")
    if mounts.get(config["state_dir"]) not in claims:
        fail(f"state_dir {config['state_dir']} is not on a volumeClaimTemplate")
    if not config["http"]["listen"].startswith("0.0.0.0:"):
        fail("the kubelet's probes need http.listen on 0.0.0.0")
    check_config(binary, "kubernetes ConfigMap", config_text)

    # Compose.
    compose = load_all(os.path.join(deploy, "docker-compose.yml"))[0]
    bridge = compose["services"]["zulip-bridge"]
    if seconds(bridge["stop_grace_period"]) <= FLUSH_TIMEOUT_SECS:
        fail("stop_grace_period must exceed kafka.flush_timeout_secs")
    if not bridge.get("read_only"):
        fail("the bridge container must run read-only")
    with open(os.path.join(deploy, "zulip-bridge.compose.yaml"), encoding="utf-8") as f:
        check_config(binary, "deploy/zulip-bridge.compose.yaml", f.read())


if __name__ == "__main__":
    main()
