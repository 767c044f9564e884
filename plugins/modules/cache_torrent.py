#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: cache_torrent
short_description: Make the torrent of golden's model cache and its manifest, for the peer-to-peer fan-out
version_added: 0.1.0
description:
  - On the golden host, makes a BitTorrent v2 torrent (v2 only, private, no tracker) of
    the regular files of the model cache at O(path) (the blobs and checkpoints; never the
    snapshot links, the repos' C(refs/) and C(.no_exist/), C(.locks/) nor partial
    downloads) and writes it to O(torrent), with its manifest beside it at
    C(<torrent>.json) (each file's size, mtime and mode).
  - The nodes fetch the cache from a closed swarm of golden and each other with
    M(indextts.deploy.model_cache_sync) O(indextts.deploy.model_cache_sync#module:transport=p2p),
    reading both files; golden seeds with M(indextts.deploy.cache_seed).
  - The same files make the same torrent. Hashing reads the whole cache, so it happens only
    when something changed; when the manifest computed afresh (one C(lstat) per file, as
    rsync's quick check judges files) equals the stored one and the stored torrent was made
    with the same O(name), O(ca_cert) and O(piece_size) (when given), nothing is hashed and
    nothing is written.
  - Both files are written whole to temporary files in the torrent's directory, synced,
    and renamed over the old ones, the manifest first and the torrent last. The torrent is
    the commit point, so a reader that reads the torrent and then its manifest (as
    model_cache_sync does) never pairs a new torrent with an old manifest.
  - Refuses, before writing anything (in check mode too), a O(path) that is not a directory
    or is a system directory, a O(torrent) inside O(path) (it would be part of the next
    torrent and of every node's cache), a cache with no files to share, a bad O(name),
    O(piece_size) or O(ca_cert), and a host without libtorrent's Python bindings.
author:
  - indextts.deploy maintainers (@indextts)
attributes:
  check_mode:
    description: Reports whether the torrent would be made again, without hashing or writing anything.
    support: full
  diff_mode:
    description:
      - The files added, removed and changed since the stored manifest (path, size, mtime,
        mode), and the torrent's name, CA certificate or piece size where they change.
    support: full
options:
  path:
    description:
      - The root of golden's model cache. An absolute path to a directory, not a system
        directory such as C(/) or C(/srv).
    type: path
    required: true
  torrent:
    description:
      - Where to write the torrent, an absolute path outside O(path) whose directory exists.
        Its manifest is written to the same path with C(.json) added.
    type: path
    required: true
  name:
    description:
      - The torrent's name. With O(ca_cert) it is the name the peers' certificates must
        carry (a subjectAltName DNS entry). One path component.
    type: str
    default: indextts-cache
  piece_size:
    description:
      - Bytes per piece, a power of two of at least 16384. Omitted, libtorrent chooses by
        the cache's size.
    type: int
  ca_cert:
    description:
      - The deployment CA's certificate (PEM, one certificate), an absolute path on this
        host. Given, the torrent is an SSL torrent; its peers talk over TLS only, each with a
        certificate signed by this CA that names the torrent (O(name)).
    type: path
  owner:
    description: Owner of the torrent and the manifest, a user name or a numeric id. Needs root (become).
    type: str
  group:
    description: Group of the torrent and the manifest, a group name or a numeric id.
    type: str
  mode:
    description:
      - Permissions of the torrent and the manifest, octal, in quotes (V('0644')). No
        symbolic modes, no special bits.
    type: raw
    default: '0644'
requirements:
  - libtorrent 2.0's Python bindings on this host (Debian's C(python3-libtorrent))
notes:
  - A file rewritten with the same size and mtime is not noticed, as rsync would not
    notice it; remove the manifest to have the torrent made again.
  - The cache must hold still while it is hashed; a file that changes meanwhile fails the
    task, and nothing is written.
seealso:
  - module: indextts.deploy.cache_seed
  - module: indextts.deploy.model_cache_sync
"""

EXAMPLES = r"""
- name: The torrent of golden's cache, for the nodes to fetch it from the swarm
  indextts.deploy.cache_torrent:
    path: /srv/indextts/cache
    torrent: /var/lib/indextts/cache.torrent

- name: An SSL torrent for the deployment's CA, with 4 MiB pieces
  indextts.deploy.cache_torrent:
    path: /srv/indextts/cache
    torrent: /var/lib/indextts/cache.torrent
    name: indextts-cache
    ca_cert: /etc/indextts/swarm/ca.pem
    piece_size: 4194304
    owner: root
    group: indextts
    mode: '0640'
"""

RETURN = r"""
torrent:
  description: The path of the torrent.
  returned: always
  type: str
  sample: /var/lib/indextts/cache.torrent
manifest:
  description: The path of the manifest (the torrent's path with C(.json) added).
  returned: always
  type: str
  sample: /var/lib/indextts/cache.torrent.json
info_hash:
  description:
    - The torrent's v2 info hash (hex). V(null) in check mode when the torrent would be
      made again.
  returned: always
  type: str
  sample: 3e1aec1d0b2c6a0f4fd8e1e1c7c1f0c3b5b7a0d1e2f3a4b5c6d7e8f9a0b1c2d3
files:
  description: How many files the torrent holds.
  returned: always
  type: int
  sample: 34
bytes:
  description: Their total size.
  returned: always
  type: int
  sample: 6312312
name:
  description: The torrent's name (O(name)).
  returned: always
  type: str
  sample: indextts-cache
ssl:
  description: Whether it is an SSL torrent (O(ca_cert) given).
  returned: always
  type: bool
  sample: false
piece_size:
  description: The torrent's piece size. V(null) in check mode when the torrent would be made again.
  returned: always
  type: int
  sample: 65536
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.indextts.deploy.plugins.module_utils._model_cache.torrent_file import CacheTorrent


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            torrent=dict(type="path", required=True),
            name=dict(type="str", default="indextts-cache"),
            piece_size=dict(type="int"),
            ca_cert=dict(type="path"),
            owner=dict(type="str"),
            group=dict(type="str"),
            mode=dict(type="raw", default="0644"),
        ),
        supports_check_mode=True,
    )
    module.exit_json(**CacheTorrent(module).run())


if __name__ == "__main__":
    main()
