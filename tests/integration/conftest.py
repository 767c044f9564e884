# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Integration tests against the real IndexTTS2 releases on this host.

Makes ``ansible_collections.indextts.deploy`` importable from this checkout (as
tests/unit/conftest.py does) and prints the gap matrix the tests record: one row per
case, with the preflight's verdict, the real app's, and the time taken. The table is
also written to ``.cache/gap-matrix.txt`` (and each row, as it is measured, to
``.cache/gap-matrix.log``).
"""

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COLLECTIONS = os.path.join(ROOT, ".cache", "collections")
LINK = os.path.join(COLLECTIONS, "ansible_collections", "indextts", "deploy")
TABLE = os.path.join(ROOT, ".cache", "gap-matrix.txt")
LOG = os.path.join(ROOT, ".cache", "gap-matrix.log")

if not os.path.lexists(LINK):
    os.makedirs(os.path.dirname(LINK), exist_ok=True)
    os.symlink(ROOT, LINK)
if COLLECTIONS not in sys.path:
    sys.path.insert(0, COLLECTIONS)

ROWS = []
PIN_TIMES = {}
HEADER = ("pin", "case", "kind", "preflight", "app", "agree", "s", "app detail")


class GapRecorder(object):
    """Collects the matrix rows of one session."""

    def __init__(self):
        if os.path.exists(LOG):
            os.unlink(LOG)

    @staticmethod
    def row(pin, case, kind, preflight, app, agree, seconds, detail):
        values = (pin, case, kind, preflight, app, "yes" if agree else "NO", "%.0f" % seconds, detail)
        ROWS.append(values)
        os.makedirs(os.path.dirname(LOG), exist_ok=True)
        with open(LOG, "a") as f:
            f.write("\t".join(values) + "\n")

    @staticmethod
    def pin_time(pin, seconds, cases):
        PIN_TIMES[pin] = (seconds, cases)


@pytest.fixture(scope="session")
def gap_recorder():
    return GapRecorder()


def _cell(value, width=72):
    return value if len(value) <= width else value[:width - 3] + "..."


def format_table():
    """The matrix as aligned text; long verdicts are cut (``.cache/gap-matrix.log`` has them whole)."""
    rows = [tuple(_cell(v) for v in values[:-1]) + values[-1:] for values in ROWS]
    widths = [len(h) for h in HEADER]
    for values in rows:
        widths = [max(w, len(v)) for w, v in zip(widths, values)]
    widths[-1] = 0
    lines = ["  ".join(v.ljust(w) for v, w in zip(HEADER, widths)).rstrip()]
    for values in rows:
        lines.append("  ".join(v.ljust(w) for v, w in zip(values, widths)).rstrip())
    for pin, (seconds, cases) in sorted(PIN_TIMES.items()):
        lines.append("%s: %d cases in %.0f s wall time" % (pin, cases, seconds))
    return "\n".join(lines) + "\n"


def pytest_terminal_summary(terminalreporter):
    if not ROWS:
        return
    table = format_table()
    os.makedirs(os.path.dirname(TABLE), exist_ok=True)
    with open(TABLE, "w") as f:
        f.write(table)
    terminalreporter.write_sep("=", "IndexTTS2 gap matrix (also in %s)" % os.path.relpath(TABLE, ROOT))
    terminalreporter.write(table)
