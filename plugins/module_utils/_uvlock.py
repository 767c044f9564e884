# -*- coding: utf-8 -*-
# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure readers of a release's Python packaging metadata: ``uv.lock`` and ``requires-python``.

IndexTTS2 pins its whole dependency set in ``uv.lock``. A build host that installs it
with pip (from PyPI or from a wheelhouse) turns that lock into pip constraints for one
target interpreter and platform, so pip installs exactly the locked versions. Nothing
here runs a process or touches the network; the version and marker grammar is the
small subset uv writes into its lock files (PEP 440 release numbers, PEP 508 markers
over python_(full_)version, sys_platform, platform_machine, joined with and/or).
"""

import re

_TOKEN_RE = re.compile(r"\s*(?:(?P<paren>[()])|(?P<op>===|==|!=|<=|>=|~=|<|>)|(?P<word>[A-Za-z_][A-Za-z0-9_.]*)"
                       r"|'(?P<sq>[^']*)'|\"(?P<dq>[^\"]*)\")")
_VERSION_VARS = ("python_full_version", "python_version", "implementation_version")


class LockError(ValueError):
    """A lock or a specifier this reader does not understand: the message says which."""


def release_tuple(version):
    """(3, 11, 2) of '3.11.2', '3.11.2rc1' or '2.8.0+cu128'; local and pre-release parts dropped."""
    numbers = re.match(r"^\s*v?(\d+(?:\.\d+)*)", version or "")
    if not numbers:
        raise LockError("not a version: %r" % (version,))
    return tuple(int(n) for n in numbers.group(1).split("."))


def public_version(version):
    """The version without its local label: PyPI's name for '2.8.0+cu128' is '2.8.0'."""
    return version.split("+", 1)[0]


def _compare(left, op, right, as_version):
    if as_version and op in ("==", "!=") and right.endswith(".*"):
        prefix = release_tuple(right[:-2])
        return (release_tuple(left)[:len(prefix)] == prefix) == (op == "==")
    if as_version:
        a, b = release_tuple(left), release_tuple(right)
        width = max(len(a), len(b))
        a, b = a + (0,) * (width - len(a)), b + (0,) * (width - len(b))
        if op == "~=":
            prefix = release_tuple(right)[:-1]
            return a >= b and a[:len(prefix)] == prefix
    else:
        a, b = left, right
        if op not in ("==", "!=", "==="):
            raise LockError("marker compares %r with %s: only == and != apply to names" % (left, op))
    return {"==": a == b, "===": a == b, "!=": a != b, "<": a < b, "<=": a <= b,
            ">": a > b, ">=": a >= b}[op]


def _tokens(marker):
    pos, out = 0, []
    marker = marker.strip()
    while pos < len(marker):
        m = _TOKEN_RE.match(marker, pos)
        if not m or m.end() == pos:
            raise LockError("cannot read the marker %r at %r" % (marker, marker[pos:]))
        pos = m.end()
        if m.group("paren"):
            out.append(("paren", m.group("paren")))
        elif m.group("op"):
            out.append(("op", m.group("op")))
        elif m.group("word"):
            out.append(("word", m.group("word")))
        else:
            out.append(("str", m.group("sq") if m.group("sq") is not None else m.group("dq")))
    return out


def marker_holds(marker, env):
    """Evaluate a PEP 508 marker (the subset in uv.lock) against ``env``, a dict of marker variables."""
    tokens = _tokens(marker)
    pos = [0]

    def peek():
        return tokens[pos[0]] if pos[0] < len(tokens) else (None, None)

    def take():
        tok = peek()
        pos[0] += 1
        return tok

    def value(tok):
        kind, text = tok
        if kind == "str":
            return text, False
        if kind == "word" and text in env:
            return env[text], text in _VERSION_VARS
        raise LockError("marker %r names %r, which is not a known marker variable" % (marker, text))

    def atom():
        if peek() == ("paren", "("):
            take()
            result = either()
            if take() != ("paren", ")"):
                raise LockError("unbalanced parentheses in marker %r" % marker)
            return result
        left, op, right = take(), take(), take()
        if op[0] != "op":
            raise LockError("marker %r: expected a comparison after %r" % (marker, left[1]))
        (lval, lver), (rval, rver) = value(left), value(right)
        return _compare(lval, op[1], rval, lver or rver)

    def joined(word, operand, combine):
        # Every operand is read (and so checked), whatever the result so far.
        def parse():
            result = operand()
            while peek() == ("word", word):
                take()
                result = combine(operand(), result)
            return result
        return parse

    both = joined("and", atom, lambda new, old: new and old)
    either = joined("or", both, lambda new, old: new or old)

    result = either()
    if pos[0] != len(tokens):
        raise LockError("unexpected %r in marker %r" % (peek()[1], marker))
    return result


def specifier_holds(version, specifier):
    """Whether ``version`` satisfies a requires-python specifier such as '>=3.10,<3.12'."""
    for clause in (specifier or "").split(","):
        clause = clause.strip()
        if not clause:
            continue
        m = re.match(r"^(===|==|!=|<=|>=|~=|<|>)\s*([0-9][0-9A-Za-z.*+!]*)$", clause)
        if not m:
            raise LockError("cannot read the version specifier %r" % clause)
        op, bound = m.groups()
        if not _compare(version, op, bound, True):
            return False
    return True


def target_env(python_version, sys_platform="linux", platform_machine="x86_64"):
    """Marker variables of a target interpreter, e.g. target_env('3.11.2')."""
    full = ".".join(str(n) for n in release_tuple(python_version))
    return {"python_full_version": full, "python_version": ".".join(full.split(".")[:2]),
            "implementation_version": full, "sys_platform": sys_platform,
            "platform_machine": platform_machine, "platform_system": {"linux": "Linux"}.get(sys_platform, sys_platform),
            "os_name": "posix" if sys_platform != "win32" else "nt", "implementation_name": "cpython",
            "platform_python_implementation": "CPython", "extra": ""}


def lock_constraints(lock, env, public=True):
    """``name==version`` lines pinning every package of a parsed uv.lock for ``env``.

    ``lock`` is the lock as parsed by tomllib. A package locked in several versions
    (torch: one build for Linux, another for macOS) is pinned to the entry whose
    ``resolution-markers`` hold for ``env``. The project itself (an editable or
    directory source) is left out. ``public`` drops local labels (+cu128), naming the
    build as PyPI does. Constraints restrict versions only, so pins of packages a
    platform never installs are harmless.
    """
    by_name = {}
    for package in lock.get("package", []):
        source = package.get("source") or {}
        if "editable" in source or "directory" in source or "virtual" in source:
            continue
        by_name.setdefault(package["name"], []).append(package)
    lines = []
    for name in sorted(by_name):
        candidates = by_name[name]
        if len(candidates) > 1:
            candidates = [p for p in candidates
                          if any(marker_holds(m, env) for m in p.get("resolution-markers", []))]
        if len(candidates) != 1:
            raise LockError("uv.lock holds %d versions of %s for Python %s on %s/%s; cannot pick one"
                            % (len(candidates), name, env["python_full_version"], env["sys_platform"],
                               env["platform_machine"]))
        version = candidates[0]["version"]
        lines.append("%s==%s" % (name, public_version(version) if public else version))
    return lines


def requires_python(pyproject):
    """The ``requires-python`` of a parsed pyproject.toml, or '' when it sets none."""
    return ((pyproject or {}).get("project") or {}).get("requires-python", "") or ""
