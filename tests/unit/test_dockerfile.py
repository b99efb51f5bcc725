"""The Dockerfile's shape, read with dockerfile-parse (no Docker engine runs here): one image for
every service, on a slim Python base, the wheel built from this tree and installed, run as a
user that is not root, with `bosun` as its entry point."""

from __future__ import annotations

import json
import re
import tomllib

from dockerfile_parse import DockerfileParser

from tests.infra import REPO


def stages() -> list[list[tuple[str, str]]]:
    """(instruction, value) per build stage, comments left out."""
    parsed = DockerfileParser(path=str(REPO / "Dockerfile"))
    found: list[list[tuple[str, str]]] = []
    for line in parsed.structure:
        if line["instruction"] == "FROM":
            found.append([])
        if line["instruction"] != "COMMENT":
            found[-1].append((line["instruction"], line["value"]))
    return found


def final() -> list[tuple[str, str]]:
    return stages()[-1]


def values(stage: list[tuple[str, str]], instruction: str) -> list[str]:
    return [value for ins, value in stage if ins == instruction]


def test_every_stage_is_a_slim_python_that_the_package_supports() -> None:
    wanted = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    floor = tuple(map(int, re.fullmatch(r">=(\d+)\.(\d+)", wanted).groups()))
    for stage in stages():
        image = values(stage, "FROM")[0].split()[0]
        match = re.fullmatch(r"python:(\d+)\.(\d+)(?:\.\d+)?-slim(?:-\w+)?", image)
        assert match, f"{image}: not a slim Python base"
        assert tuple(map(int, match.groups())) >= floor, f"{image}: pyproject wants Python {wanted}"


def test_the_wheel_is_built_from_this_tree_and_installed_in_the_image() -> None:
    build, image = stages()[0], final()
    assert any("pip wheel" in run and "--wheel-dir /wheels" in run for run in values(build, "RUN"))
    assert any(v.startswith("--from=") and "/wheels" in v for v in values(image, "COPY"))
    install = " ".join(values(image, "RUN"))
    assert re.search(r"pip install [^&]*/wheels/bosun-\*\.whl", install), install
    assert "rm -rf /wheels" in install  # the wheel is not left in a layer of its own use
    assert not any(v.split()[0] in ("bosun", "services", "proto") for v in values(image, "COPY")), \
        "the source tree is copied into the image instead of installed as a wheel"


def test_it_runs_as_a_user_that_is_not_root() -> None:
    image = final()
    users = values(image, "USER")
    assert users, "no USER: the services would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    assert re.search(rf"useradd .*\b{user}\b", " ".join(values(image, "RUN"))), f"{user} is never created"
    # USER comes after every RUN: nothing runs as root once the user is set
    instructions = [ins for ins, _ in image]
    assert instructions.index("USER") > max(i for i, ins in enumerate(instructions) if ins == "RUN")


def test_bosun_is_the_entry_point_and_a_console_script_of_the_package() -> None:
    image = final()
    [entrypoint] = values(image, "ENTRYPOINT")
    assert json.loads(entrypoint) == ["bosun"]  # exec form: the service gets SIGTERM itself
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert "bosun" in scripts
    [cmd] = values(image, "CMD")
    assert isinstance(json.loads(cmd), list)
