# -*- coding: utf-8 -*-
# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Revision-aware delta: an older blob of the same file as the basis of a new one.

A new revision's blob differs from the previous revision's blob of the same file in
a few blocks; the transport sends only those when it finds the old content under the
new name in a basis dir (rsync's --link-dest). Seeds are hard links in the state dir,
never under a final name: a name in blobs/ promises the content of its hash."""

import os

from ansible_collections.indextts.deploy.plugins.module_utils._paths import error_text


def inside_dest(dest, rel):
    """True when dest/<rel>'s directory is reached without leaving dest through a link."""
    real = os.path.realpath(os.path.join(dest, os.path.dirname(rel)))
    return real == os.path.join(os.path.realpath(dest), os.path.dirname(rel)).rstrip("/")


def seed(dest, seeds_dir, pairs, makedirs, warn):
    """Hard-link each pair's basis into seeds_dir under the new blob's path; returns
    {blob: seed} and the pairs seeded. Only between regular files inside dest (a link
    from an older sync must not carry the seed, or the transport, outside it). The
    transport writes the new blob to a temporary file and renames it into place, so the
    old blob is never modified."""
    seeds = {}
    seeded = []
    real_dest = os.path.realpath(dest) + os.sep
    for pair in pairs:
        basis = os.path.join(dest, pair["basis"])
        path = os.path.join(seeds_dir, pair["blob"])
        if os.path.lexists(os.path.join(dest, pair["blob"])):
            continue
        try:
            if (not inside_dest(dest, pair["basis"]) or not inside_dest(dest, pair["blob"])
                    or not os.path.realpath(basis).startswith(real_dest) or os.path.islink(basis)
                    or not os.path.isfile(basis)):
                warn("not seeding %s from %s: a link leads out of dest %s" % (pair["blob"], pair["basis"], dest))
                continue
            makedirs(os.path.dirname(path), 0o700)
            os.link(basis, path, follow_symlinks=False)
        except OSError as e:
            warn("could not seed %s from %s: %s" % (pair["blob"], pair["basis"], error_text(e)))
            continue
        seeds[pair["blob"]] = path
        seeded.append(pair)
    return seeds, seeded
