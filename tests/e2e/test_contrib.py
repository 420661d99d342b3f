"""The deployment files in contrib/: the Kubernetes manifests pass yamllint and validate
against the API schema offline (npm kubernetes-models), and the kvmserver command lines in
the manifests and the Dockerfile are ones kvmserver accepts. No container engine or cluster
runs here, so the image is not built and the manifests are not applied.
"""
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import run_process

TOP = Path(__file__).resolve().parents[2]
KUBERNETES = TOP / "contrib" / "kubernetes"
MANIFESTS = sorted(KUBERNETES.glob("*.yaml"))
VALIDATOR = TOP / "tests" / "contrib" / "validate-k8s.cjs"
NODE_MODULES = Path.home() / ".cache/kvmserver/k8s/node_modules"   # scripts/install-deps.sh


def tool(name):
    path = shutil.which(name)
    if not path:
        pytest.skip(f"{name} not installed")
    return path


def validate(files):
    if not (NODE_MODULES / "kubernetes-models").is_dir():
        pytest.skip("npm kubernetes-models not installed")
    return subprocess.run([tool("node"), VALIDATOR, NODE_MODULES, *files], capture_output=True,
                          text=True, timeout=60)


def test_manifests_pass_yamllint():
    result = subprocess.run([tool("yamllint"), "-s", "-c", KUBERNETES / ".yamllint", *MANIFESTS],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_manifests_validate_against_the_api_schema():
    result = validate(MANIFESTS)
    assert result.returncode == 0, result.stdout + result.stderr
    kinds = re.findall(r"^\S+: (\w+) \S+: valid$", result.stdout, re.M)
    assert sorted(set(kinds)) == ["Deployment", "HorizontalPodAutoscaler",
                                  "PodDisruptionBudget", "Service"], result.stdout
    assert "INVALID" not in result.stdout


def test_validator_rejects_a_wrong_object(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text((KUBERNETES / "deployment.yaml").read_text()
                   .replace("replicas: 2", "replicas: two", 1))
    result = validate([bad])
    assert result.returncode == 1, result.stdout
    assert "Deployment kvmserver: INVALID" in result.stdout, result.stdout


def container_args(manifest: Path):
    return [json.loads(m) for m in re.findall(r"args: (\[.*?\])", manifest.read_text(), re.S)]


def dockerfile_command():
    text = (TOP / "contrib" / "docker" / "Dockerfile").read_text().replace("\\\n", "")
    entry = json.loads(re.search(r"^ENTRYPOINT (\[.*\])$", text, re.M).group(1))
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", text, re.M).group(1))
    return entry[1:] + cmd    # without the kvmserver path


@pytest.mark.parametrize("where", ["deployment.yaml", "hostpath-kvm.yaml", "Dockerfile"])
def test_shipped_command_lines_are_accepted(kvmserver, where):
    if where == "Dockerfile":
        commands = [dockerfile_command()]
    else:
        commands = container_args(KUBERNETES / where)
    assert commands, f"no kvmserver command line found in {where}"
    for args in commands:
        outcome = run_process([kvmserver, "--print-config", *args])
        assert outcome.status == 0, outcome
        printed = outcome.stdout.decode()
        assert "ephemeral = true" in printed and 'metrics = ":9100"' in printed, printed
