#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: cache_seed
short_description: Seed golden's model cache to the nodes' closed libtorrent swarm while they sync
version_added: 0.1.0
description:
  - On the golden host, joins the closed swarm of the nodes with the torrent
    M(indextts.deploy.cache_torrent) made and serves the files of the cache at O(path) where
    they are (seed mode; nothing is copied, each piece is hashed when first sent).
  - Meant to run as an asynchronous task (C(async), C(poll=0)) while the nodes run
    M(indextts.deploy.model_cache_sync) with
    O(indextts.deploy.model_cache_sync#module:transport=p2p), then collected with
    M(ansible.builtin.async_status).
  - The swarm is closed. No tracker, DHT, local discovery or peer exchange; the seeder
    listens on O(address) only and talks to the addresses in O(peers) only. With an SSL
    torrent it talks TLS only, to peers whose certificates the torrent's CA signed.
  - Leaves when every peer in O(peers) wants nothing more from it (it was seen with all of
    the torrent, or with all it wants of it) and is gone, when for O(idle_timeout)
    seconds no peer was connected and nothing was sent (nodes already up to date never
    join the swarm), or after O(timeout) seconds (RV(outcome)). A peer with the whole
    torrent is closed at once; one with all it asked for so far stays until it leaves,
    because a node's link to its origin
    (O(indextts.deploy.model_cache_sync#module:swarm.origin)) has its own share long
    before the node has the rest, and may still ask for pieces the other nodes do not bring.
  - Before joining (in check mode too) refuses a torrent that is not one, a O(path) whose
    files are not those of the torrent (missing, another size, or, with the manifest
    C(<torrent>.json) beside it, modified since), unparsable O(peers), a port out of range,
    an SSL torrent without O(ssl_cert) and O(ssl_key) or a plain one with them, and a host
    without libtorrent's Python bindings.
author:
  - indextts.deploy maintainers (@indextts)
attributes:
  check_mode:
    description: Checks the inputs and the files, and returns without joining the swarm.
    support: full
  diff_mode:
    description: Serving changes nothing, so there is no diff.
    support: none
options:
  torrent:
    description: The torrent M(indextts.deploy.cache_torrent) made, an absolute path on this host.
    type: path
    required: true
  path:
    description: The root of the cache the torrent was made of (M(indextts.deploy.cache_torrent)'s O(indextts.deploy.cache_torrent#module:path)).
    type: path
    required: true
  address:
    description:
      - The IP address of this host the seeder listens on and connects from, the one the
        nodes' O(indextts.deploy.model_cache_sync#module:swarm.peers) name.
    type: str
    required: true
  port:
    description: The TCP port the seeder listens on (for TLS only with an SSL torrent).
    type: int
    default: 6881
  peers:
    description:
      - "The nodes, as V(address), V(address:port) or V([IPv6]:port): the only addresses the
        seeder talks to, and those it waits for. Given with their swarm ports, the seeder
        also calls them, every few seconds until each is done. Nodes that fetch with golden
        as their O(indextts.deploy.model_cache_sync#module:swarm.origin) call golden
        themselves: give them by address."
    type: list
    elements: str
    required: true
  ssl_cert:
    description:
      - This host's certificate (PEM), signed by the deployment CA that the torrent carries,
        its subjectAltName naming the torrent. For an SSL torrent, with O(ssl_key).
    type: path
  ssl_key:
    description: The private key of O(ssl_cert) (PEM).
    type: path
  timeout:
    description: Seconds after which the seeder leaves, however far the nodes are. Keep it below the task's C(async).
    type: int
    default: 3600
  idle_timeout:
    description:
      - Seconds without any connected peer and without sending, after which the seeder
        leaves. Nodes with nothing to fetch never join, so with every node up to date the
        seeder leaves after this long.
    type: int
    default: 120
  upload_limit:
    description: Bytes per second the seeder sends in all, V(0) for no limit.
    type: int
    default: 0
requirements:
  - libtorrent 2.0's Python bindings on this host (Debian's C(python3-libtorrent))
notes:
  - A node that finished stays connected for 2 seconds (within its
    O(indextts.deploy.model_cache_sync#module:swarm.linger)), and keeps its link to its
    origin as long, so that the seeder sees it is done; a node that leaves another way
    (its swarm stalled and rsync took over) is in RV(peers_missing), and the seeder leaves
    by O(idle_timeout) or O(timeout).
  - Serving reads the cache only. Do not change the cache while the seeder runs; a piece
    that no longer matches its hash fails at the nodes, which then fall back to rsync.
seealso:
  - module: indextts.deploy.cache_torrent
  - module: indextts.deploy.model_cache_sync
"""

EXAMPLES = r"""
- name: Golden seeds its cache while the nodes sync
  indextts.deploy.cache_seed:
    torrent: /var/lib/indextts/cache.torrent
    path: /srv/indextts/cache
    address: 10.10.0.1
    peers: "{{ groups['tts_nodes'] | map('extract', hostvars, 'storage_address') | list }}"
    timeout: 3000
  async: 3600
  poll: 0
  register: seeder

- name: The nodes fetch from the swarm (golden and each other)
  indextts.deploy.model_cache_sync:
    src: /srv/indextts/cache
    dest: /srv/indextts/cache
    src_host: golden.example.com
    transport: p2p
    swarm:
      torrent: /var/lib/indextts/cache.torrent
      address: "{{ storage_address }}"
      peers: [10.10.0.1:6881, 10.10.0.12:6881]

- name: Wait for the seeder to leave
  ansible.builtin.async_status:
    jid: "{{ seeder.ansible_job_id }}"
  register: seeded
  until: seeded.finished
  retries: 120
  delay: 30

- name: An SSL torrent, golden's certificate signed by the deployment CA
  indextts.deploy.cache_seed:
    torrent: /var/lib/indextts/cache.torrent
    path: /srv/indextts/cache
    address: 10.10.0.1
    port: 6881
    peers: [10.10.0.11:6881, 10.10.0.12:6881]
    ssl_cert: /etc/indextts/swarm/golden.pem
    ssl_key: /etc/indextts/swarm/golden.key
    upload_limit: 500000000
  async: 3600
  poll: 0
"""

RETURN = r"""
outcome:
  description:
    - Why the seeder left. V(all peers done), V(idle) (no connected peer wanted anything
      for O(idle_timeout) seconds) or V(timed out). V(null) in check mode.
  returned: always
  type: str
  sample: all peers done
uploaded:
  description: Payload bytes sent to the peers.
  returned: always
  type: int
  sample: 6312312
seconds:
  description: Time in the swarm.
  returned: always
  type: float
  sample: 41.3
peers_done:
  description: The addresses of O(peers) seen to want nothing more.
  returned: always
  type: list
  elements: str
  sample: ["10.10.0.11", "10.10.0.12"]
peers_missing:
  description: The addresses of O(peers) not seen to (all of them in check mode).
  returned: always
  type: list
  elements: str
  sample: []
info_hash:
  description: The torrent's v2 info hash (hex).
  returned: always
  type: str
  sample: 3e1aec1d0b2c6a0f4fd8e1e1c7c1f0c3b5b7a0d1e2f3a4b5c6d7e8f9a0b1c2d3
port:
  description: The port the seeder listened on; V(null) in check mode.
  returned: always
  type: int
  sample: 6881
events:
  description: The newest peer events (blocked addresses, failed connections, hash failures), at most 20.
  returned: always
  type: list
  elements: str
  sample: ["peer_blocked_alert: 10.10.0.99 blocked peer: ip_filter"]
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.indextts.deploy.plugins.module_utils._model_cache.seeder import CacheSeed


def main():
    module = AnsibleModule(
        argument_spec=dict(
            torrent=dict(type="path", required=True),
            path=dict(type="path", required=True),
            address=dict(type="str", required=True),
            port=dict(type="int", default=6881),
            peers=dict(type="list", elements="str", required=True),
            ssl_cert=dict(type="path"),
            ssl_key=dict(type="path"),
            timeout=dict(type="int", default=3600),
            idle_timeout=dict(type="int", default=120),
            upload_limit=dict(type="int", default=0),
        ),
        required_together=[("ssl_cert", "ssl_key")],
        supports_check_mode=True,
    )
    module.exit_json(**CacheSeed(module).run())


if __name__ == "__main__":
    main()
