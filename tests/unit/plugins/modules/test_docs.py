# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Each module's DOCUMENTATION, EXAMPLES and RETURN are valid YAML and its documented
options match its argument_spec (ansible-test sanity checks more, but later)."""

import ast
import os

import pytest
import yaml

MODULES = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__)))))), "plugins", "modules")
NAMES = sorted(n[:-3] for n in os.listdir(MODULES) if n.endswith(".py") and not n.startswith("_"))


def docs(name):
    tree = ast.parse(open(os.path.join(MODULES, name + ".py")).read())
    return {t.targets[0].id: t.value.value for t in tree.body
            if isinstance(t, ast.Assign) and getattr(t.targets[0], "id", "") in ("DOCUMENTATION", "EXAMPLES", "RETURN")}


@pytest.mark.parametrize("name", NAMES)
def test_docs_are_yaml_and_name_the_module(name):
    found = docs(name)
    assert set(found) == {"DOCUMENTATION", "EXAMPLES", "RETURN"}
    documentation = yaml.safe_load(found["DOCUMENTATION"])
    assert documentation["module"] == name
    assert all("description" in opt and "type" in opt for opt in documentation["options"].values())
    assert isinstance(yaml.safe_load(found["EXAMPLES"]), list)
    assert all("returned" in v for v in yaml.safe_load(found["RETURN"]).values())
