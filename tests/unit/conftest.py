# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Make ``ansible_collections.indextts.deploy`` importable from this checkout.

The checkout is the collection; `make setup` links it at
.cache/collections/ansible_collections/indextts/deploy. Plain `pytest tests/unit`
works without it too: the link is made here when missing.
"""

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COLLECTIONS = os.path.join(ROOT, ".cache", "collections")
LINK = os.path.join(COLLECTIONS, "ansible_collections", "indextts", "deploy")

if not os.path.lexists(LINK):
    os.makedirs(os.path.dirname(LINK), exist_ok=True)
    os.symlink(ROOT, LINK)
if COLLECTIONS not in sys.path:
    sys.path.insert(0, COLLECTIONS)


# The libtorrent tests' fixtures (module_utils/test_torrent*.py).
@pytest.fixture
def lt():
    return pytest.importorskip("libtorrent", reason="libtorrent's Python bindings are not installed", exc_type=ImportError)


@pytest.fixture
def swarms(lt):
    """Make _torrent.Swarms through this; all are closed at the end of the test."""
    from ansible_collections.indextts.deploy.plugins.module_utils import _torrent
    made = []

    def make(*args, **kwargs):
        made.append(_torrent.Swarm(*args, **kwargs))
        return made[-1]
    yield make
    for swarm in made:
        swarm.close()
