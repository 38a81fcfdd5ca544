"""What the wheels ship: every package of the source tree, the demo data, one version string.

The core and both adapters are built as wheels (``tests/_wheels.py``, once per session) and each
wheel's contents are listed against the source tree: every folder with an ``__init__.py`` is a
package in the wheel, every module in the tree is in the wheel and nothing else is, and all of
``flowcore/data/demo`` (the demo data and the shipped bundle) is there.
"""

from __future__ import annotations

import configparser
import email
import zipfile

import pytest

from _wheels import DISTRIBUTIONS, source_version, wheel_names, wheels  # noqa: F401  (fixture)


def _source_files(dist: str, pattern: str) -> set[str]:
    folder, package = DISTRIBUTIONS[dist]
    return {p.relative_to(folder).as_posix() for p in (folder / package).rglob(pattern)
            if p.is_file() and "__pycache__" not in p.parts}


def _dist_info(wheel, dist: str, name: str) -> str:
    prefix = f"{dist.replace('-', '_')}-{source_version(dist)}.dist-info/"
    with zipfile.ZipFile(wheel) as zf:
        return zf.read(prefix + name).decode()


@pytest.mark.parametrize("dist", list(DISTRIBUTIONS))
def test_wheel_ships_every_package_and_module(wheels, dist):
    names = wheel_names(wheels[dist])
    packages = {p.rsplit("/", 1)[0] for p in _source_files(dist, "__init__.py")}
    assert packages, f"no packages found in the {dist} source tree"
    missing = sorted(p for p in packages if f"{p}/__init__.py" not in names)
    assert not missing, f"packages of the source tree missing from the {dist} wheel: {missing}"
    # every module, and no module that the tree does not have (a stale build/ copy, say)
    assert {n for n in names if n.endswith(".py")} == _source_files(dist, "*.py")
    # nothing but the package and its metadata
    top = DISTRIBUTIONS[dist][1]
    stray = sorted(n for n in names if not n.startswith((f"{top}/", f"{dist.replace('-', '_')}-")))
    assert not stray, f"{dist} wheel ships files outside its package: {stray}"


def test_core_wheel_ships_the_demo_data(wheels):
    names = wheel_names(wheels["flowcore"])
    demo = {n for n in _source_files("flowcore", "*") if n.startswith("flowcore/data/demo/")}
    # the bundle and the test split the demo runs on; all of flowcore/data/demo is shipped
    assert {"flowcore/data/demo/digits_test.npz", "flowcore/data/demo/bundle/flow.json",
            "flowcore/data/demo/bundle/encoder.onnx", "flowcore/data/demo/bundle/decoder.onnx"} <= demo
    assert sorted(demo - names) == []


@pytest.mark.parametrize("dist", list(DISTRIBUTIONS))
def test_wheel_version_is_the_package_version(wheels, dist):
    meta = email.message_from_string(_dist_info(wheels[dist], dist, "METADATA"))
    assert meta["Name"] == dist
    assert meta["Version"] == source_version(dist)
    assert wheels[dist].name.startswith(f"{dist.replace('-', '_')}-{source_version(dist)}-")


@pytest.mark.parametrize("dist, group, name, value", [
    ("flowcore", "console_scripts", "flowcore", "flowcore.cli:main"),
    ("flowcore-torch", "flowcore.adapters", "torch", "flowcore_torch"),
    ("flowcore-tensorflow", "flowcore.adapters", "tensorflow", "flowcore_tensorflow"),
])
def test_wheel_entry_points(wheels, dist, group, name, value):
    eps = configparser.ConfigParser()
    eps.read_string(_dist_info(wheels[dist], dist, "entry_points.txt"))
    assert eps[group][name] == value
