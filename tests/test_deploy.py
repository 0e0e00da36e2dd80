"""The deployment recipes agree with the CLI: commands parse, ports and addresses line up."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from routebench.cli import LOCUST_MASTER_PORT, build_parser

ROOT = Path(__file__).resolve().parent.parent


def flag(cmd: list[str], name: str) -> str:
    return cmd[cmd.index(name) + 1]


def parses(cmd: list[str]) -> Any:
    assert cmd[0] == "routebench"
    try:
        return build_parser().parse_args(cmd[1:])
    except SystemExit as exc:  # argparse's way of saying no
        pytest.fail(f"{cmd} does not parse: exit {exc.code}")


def check_roles(
    target: list[str],
    target_port: int,
    target_host: str,
    master: list[str],
    master_port: int,
    master_host: str,
    worker: list[str],
    worker_replicas: int,
) -> None:
    serve = parses(target)
    assert serve.func.__name__ == "cmd_serve" and serve.port == target_port
    run = parses(master)
    assert run.func.__name__ == "cmd_run"
    assert run.external_workers == worker_replicas
    assert run.master_port == master_port == LOCUST_MASTER_PORT
    url = urlparse(run.target_url)
    assert (url.hostname, url.port) == (target_host, target_port)
    joined = parses(worker)
    assert joined.func.__name__ == "cmd_worker"
    assert (joined.master_host, joined.master_port) == (master_host, master_port)


def test_compose_file_agrees_with_the_cli() -> None:
    compose = yaml.safe_load((ROOT / "deploy" / "docker-compose.yml").read_text())
    s = compose["services"]
    target_port = int(s["target"]["expose"][0])
    master_port = int(s["master"]["expose"][0])
    check_roles(
        s["target"]["command"],
        target_port,
        "target",
        s["master"]["command"],
        master_port,
        "master",
        s["worker"]["command"],
        s["worker"]["deploy"]["replicas"],
    )
    assert s["target"]["build"] == ".." and all(v.get("image") == "routebench:latest" for v in s.values())


def test_kubernetes_manifests_agree_with_the_cli() -> None:
    docs = [d for f in sorted((ROOT / "deploy" / "k8s").glob("*.yaml")) for d in yaml.safe_load_all(f.read_text())]
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}

    def container(name: str) -> dict[str, Any]:
        return deployments[name]["spec"]["template"]["spec"]["containers"][0]

    target_port = services["routebench-target"]["spec"]["ports"][0]["port"]
    master_port = services["routebench-master"]["spec"]["ports"][0]["port"]
    assert container("routebench-target")["ports"][0]["containerPort"] == target_port
    assert container("routebench-master")["ports"][0]["containerPort"] == master_port
    for name, svc in services.items():  # each Service selects the pods of its Deployment
        assert svc["spec"]["selector"] == deployments[name]["spec"]["selector"]["matchLabels"]
    check_roles(
        container("routebench-target")["command"],
        target_port,
        "routebench-target",
        container("routebench-master")["command"],
        master_port,
        "routebench-master",
        container("routebench-worker")["command"],
        deployments["routebench-worker"]["spec"]["replicas"],
    )


def test_dockerfile_ships_every_package_and_the_profiles() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    pyproject = (ROOT / "pyproject.toml").read_text()
    for package in ("target_app", "routebench", "locustfiles", "analysis", "experiments"):
        assert f"COPY {package} {package}" in dockerfile
        assert package == "experiments" or f'"{package}*"' in pyproject
    assert "-c constraints.txt" in dockerfile  # the same pinned stack as make


def test_the_locustfile_shadows_no_package() -> None:
    """Locust imports a locustfile as a top-level module named after the file: a locustfile called
    after one of the project's packages would replace that package inside every Locust process."""
    import tomllib

    from routebench.locust_cluster import LOCUSTFILE

    project = tomllib.loads((LOCUSTFILE.parent.parent / "pyproject.toml").read_text())
    packages = {p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert LOCUSTFILE.is_file() and LOCUSTFILE.stem not in packages | {"locust"}
