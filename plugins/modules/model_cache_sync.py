#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: model_cache_sync
short_description: Pull a model cache (IndexTTS2 checkpoints, Hugging Face hub cache) with rsync
version_added: 0.1.0
description:
  - Runs on the host that receives the cache and pulls it with rsync, from a directory
    on this host or over SSH from the golden build host or any host that already has it.
  - Makes changes visible in a safe order. Blobs and plain files land first, then the
    snapshot links to them, then the refs naming snapshots, so a reader of the cache
    never follows a ref or a snapshot to a missing or half-written blob. Partial files
    stay in a partial directory, never under a final name, and a rerun resumes them.
  - Plans once and publishes exactly the plan. The source's snapshot links and refs are
    read once, in a run beside the content's (into C(.locks/indextts-sync/plan/) in
    O(dest), only what differs), and published from there, never from a second look at
    the live source. Blobs the plan needs that the dry run did not list are fetched too.
    A source that gains a revision during the run gives the state the plan read
    (RV(published_refs); RV(source_moved) says when that is newer than the dry run's),
    the next run the newer one; a source that drops the planned revision fails the run
    with nothing of it published.
  - Seeds a new blob of a new revision from the blob the same file had in an older
    local revision (a hard link in its state directory, which rsync takes as the basis;
    never under the new blob's final name, and the old blob is never modified), so
    that rsync's delta algorithm sends only the changed blocks. Seeded blobs are always
    verified.
  - Verifies the LFS blobs (the weights) it wrote against their names, which are their
    sha256, before any snapshot or ref is published, so a corrupt blob fails the task while
    nothing points at it yet. A blob that does not match is moved off its final name
    (to C(.locks/indextts-sync/rejected/) in O(dest)), so that no rerun publishes it.
    Blobs that snapshot links about to be published point at are verified too, unless
    an earlier run verified them and they did not change since (a record in the state
    directory), so a blob a killed run left unverified is never published unchecked.
  - Refuses, before writing anything, links inside a Hugging Face repo other than
    C(snapshots/<commit>/<file>) to a file in that repo's C(blobs/) (a hostile or broken
    source could otherwise make it, or a reader, reach outside O(dest)).
  - One run per O(dest) at a time. A lock in O(dest) (C(flock) on
    C(.locks/indextts-sync/lock)) is held for the whole run; the re-sync timer and
    Ansible share it, and a second run waits up to O(lock_timeout) seconds, then fails
    naming the run that holds it.
  - Clears what a killed run left. Its seeds are removed, rsync's temporary files of
    blobs become partial files that this run resumes from, and the SSH control masters
    and directories of runs that are gone are closed and removed (RV(leftovers)).
  - Moves file data in parallel runs (O(streams)), large files shared out by size, each
    on its own SSH connection, and hashes blobs for verification while the transfer
    still runs.
  - Retries transient failures (network, timeouts) with exponential back-off itself.
  - A dry run first decides whether anything changes, so a rerun with nothing new
    moves nothing beyond rsync's file list and reports no change.
author:
  - indextts.deploy maintainers (@indextts)
attributes:
  check_mode:
    description: A dry run of rsync. C(changed) and RV(changed_files) are what a real run would report.
    support: full
  diff_mode:
    description: The itemized list of changes (rsync C(--itemize-changes) format).
    support: full
options:
  src:
    type: str
    description:
      - The cache directory on the source host (or on this host when O(src_host) is omitted).
      - An absolute path on the source host, not expanded here. Its contents land in O(dest).
      - When the source host restricts this host's key with C(rrsync DIR), paths are
        relative to that DIR, so V(/) names the whole restricted cache.
    required: true
  dest:
    description:
      - Where the cache lives on this host. An absolute path; created when missing.
    type: path
    required: true
  src_host:
    description:
      - SSH host name or address of the source. Omitted, O(src) is a local directory.
    type: str
  src_user:
    description: SSH login on O(src_host).
    type: str
  ssh_port:
    description: SSH port of O(src_host).
    type: int
    default: 22
  ssh_key:
    description: Private key for the SSH login (an absolute path on this host).
    type: path
  known_hosts:
    description:
      - known_hosts file holding the pinned key of O(src_host). Default is ssh's own
        (C(~/.ssh/known_hosts) of the user running the module).
    type: path
  host_key_checking:
    description:
      - Verify the SSH host key of O(src_host). Turning it off is explicit and warned about.
    type: bool
    default: true
  models:
    description:
      - Sync only these Hugging Face repos, as C(org/name) or C(models--org--name)
        (also C(datasets/org/name)), plus every file that is not part of a repo
        (checkpoints, configuration). Omitted, everything is synced.
      - An entry that names no repo of the source fails the task before any transfer.
    type: list
    elements: str
  delete:
    description:
      - Remove files under O(dest) that the source no longer has, after everything new
        is in place. Nothing outside O(dest) is touched, and with O(models) the repos
        not selected are left alone.
    type: bool
    default: false
  verify:
    description:
      - Check LFS blobs (named by their sha256) against their content. V(new) checks
        the blobs this run wrote, V(all) every LFS blob under O(dest), V(none) none but
        those seeded by O(revision_delta).
    type: str
    choices: [none, new, all]
    default: new
  revision_delta:
    description:
      - Seed each new blob of a new revision from the older local blob of the same file
        path, so rsync sends only the changed blocks. Only with O(src_host), where
        rsync's delta transfer applies.
    type: bool
    default: true
  retries:
    description: Further attempts of an rsync run after a transient failure.
    type: int
    default: 3
  retry_delay:
    description: Seconds before the first retry; each later retry waits twice as long.
    type: float
    default: 5
  timeout:
    description: rsync I/O timeout in seconds (no data moved for that long fails the attempt). V(0) disables it.
    type: int
    default: 300
  compress:
    description: Compress on the wire. Model weights do not compress; leave it off for them.
    type: bool
    default: false
  bwlimit:
    description:
      - Bandwidth limit of the whole sync, in rsync's C(--bwlimit) syntax (for example
        V(100M)). Set, the file data moves in one run (see O(streams)).
    type: str
  streams:
    description:
      - Parallel rsync runs for the file data. Files of 32 MiB and more are shared out
        among them, largest first, to even out the bytes per run; the first run also
        takes every smaller file. Each run has its own SSH connection, so the cipher
        and the copies spread over the CPUs at both ends.
      - V(0) uses as many runs as this host has CPUs, at most 4. V(1) moves everything
        in one run. Snapshots and refs always follow in one run each.
      - With O(bwlimit) the file data moves in one run, so that the limit holds for
        the whole sync.
    type: int
    default: 0
  dir_times:
    description:
      - Give directories the source's modification times. V(false) leaves directory times
        alone, for a tree an application adds its own files to (an IndexTTS2 release,
        whose web UI writes C(outputs/)), so those files do not make a rerun report a change.
    type: bool
    default: true
  link_dest:
    description:
      - Earlier copies of the tree on this host (rsync C(--link-dest)), for a new O(dest)
        such as a new release beside the one in use. A file identical to the source's
        there becomes a hard link instead of a transfer, and a changed one is the basis of
        rsync's delta transfer, so a new release sends only what differs. The content
        stage then walks the tree, since the plan does not list the files rsync links.
    type: list
    elements: path
  owner:
    description:
      - Owner of everything that lands in O(dest), a user name or a numeric id. Needs
        root (become); a name that is not a user on this host is refused.
    type: str
  group:
    description: Group of everything that lands in O(dest), a group name or a numeric id.
    type: str
  lock_timeout:
    description:
      - Seconds to wait for another run that holds the lock of O(dest) (the re-sync
        timer, another play); V(0) fails at once when the lock is held.
    type: int
    default: 1800
  transport:
    description:
      - How the content (blobs, checkpoints) moves. V(rsync) from O(src_host). V(p2p) from
        a closed libtorrent swarm of golden and the other nodes (O(swarm)); files the
        torrent does not hold, blobs seeded from an older revision (a few changed blocks
        go by rsync's delta) and, when the swarm stalls or times out, everything, go by
        rsync as before. The dry run, the plan, verification and publishing are the same
        for both.
    type: str
    choices: [rsync, p2p]
    default: rsync
  swarm:
    description:
      - The swarm for O(transport=p2p). Nothing to fetch, no swarm is joined.
    type: dict
    suboptions:
      torrent:
        description:
          - The v2 torrent of golden's cache, copied to this host (made on golden with
            M(indextts.deploy.cache_torrent), seeded there by M(indextts.deploy.cache_seed)).
        type: path
        required: true
      manifest:
        description:
          - The sizes, mtimes and modes of the torrent's files (JSON), given to the
            files fetched so the next dry run finds them unchanged. Default is
            O(swarm.torrent) with C(.json) added.
        type: path
      address:
        description: The address of this host that the swarm listens on and connects from.
        type: str
        required: true
      port:
        description: The TCP port the swarm listens on (for TLS when O(swarm.ssl_cert) is set).
        type: int
        default: 6881
      peers:
        description:
          - "The other members as V(address:port) or V([IPv6]:port): the other nodes, and
            golden unless it is O(swarm.origin). Only these addresses are talked to, both ways."
        type: list
        elements: str
        default: []
      origin:
        description:
          - "Golden's V(address:port) (V([IPv6]:port)), not among O(swarm.peers). This node
            then asks golden only for its own share of the pieces (a piece's share is
            its index modulo the number of nodes, in address order, of those that come
            and have not finished without it), by a second connection of its own that
            allows golden alone (on a free port of O(swarm.address)), and takes every
            other piece from the other nodes: golden sends each piece about once. Pieces
            no node brings (a node that never came, left, or finished without them) are
            asked of golden after a few seconds. Without other peers, golden is this
            node's one peer."
          - Without it, golden is one of O(swarm.peers) and every node asks it for any piece
            no node has yet (golden sent 1.5-1.7 copies of the cache to 8 nodes, see the
            collection's bench/README.md).
        type: str
      ssl_cert:
        description:
          - This host's certificate (PEM), signed by the deployment's CA that the torrent
            carries; its subjectAltName names the torrent. Peers without such a
            certificate are refused. With O(swarm.ssl_key).
        type: path
      ssl_key:
        description: The private key of O(swarm.ssl_cert) (PEM).
        type: path
      timeout:
        description: Seconds the whole swarm may take before rsync takes over; V(0) for no limit.
        type: int
        default: 3600
      stall_timeout:
        description: Seconds without progress after which the swarm counts as stalled and rsync takes over.
        type: int
        default: 60
      linger:
        description:
          - Seconds this host keeps seeding after it is done, at most, for peers that
            still fetch; it leaves earlier when every peer wants nothing more from it, after
            staying connected 2 seconds so that its peers (golden's seeder above all) see it
            is done.
        type: int
        default: 30
      upload_limit:
        description: Bytes per second this host sends to the swarm, V(0) for no limit.
        type: int
        default: 0
requirements:
  - rsync 3.1 or later on this host and on the source host
  - for O(transport=p2p), libtorrent 2.0's Python bindings on this host (Debian's C(python3-libtorrent))
notes:
  - The dry run, the first content run and the snapshot and ref stages share one SSH
    connection (a control socket in a private temporary directory, closed when the
    module ends), so they do not pay for a new SSH handshake each.
  - When this host's CPU has AES instructions, AES-GCM ciphers come first in the SSH
    cipher preference (chacha20-poly1305, ssh's default first choice, is slower there);
    the rest of ssh's default list follows.
  - The module keeps its state in O(dest) under C(.locks/indextts-sync/) (the lock, the
    record of verified blobs, seeds during a run, rejected blobs). huggingface_hub's
    cache scan skips C(.locks), the top-level C(.locks) is never transferred from the
    source, and O(delete) never removes it.
  - O(dest) may not be C(/) or a top-level system directory such as C(/etc) or C(/usr).
  - The source host only needs to accept a read-only rsync login, for example an
    C(authorized_keys) entry with C(command="rrsync -ro /srv/cache"). The role
    M(indextts.deploy.model_cache) sets that up.
seealso:
  - module: ansible.posix.synchronize
"""

EXAMPLES = r"""
- name: Pull the IndexTTS2 cache from the golden host
  indextts.deploy.model_cache_sync:
    src: /srv/indextts/cache
    dest: /srv/indextts/cache
    src_host: golden.example.com
    src_user: cache-reader
    ssh_key: /root/.ssh/indextts_cache
    known_hosts: /etc/indextts/known_hosts
    owner: indextts
    group: indextts

- name: Only two repos (and the checkpoints), removing what the source dropped
  indextts.deploy.model_cache_sync:
    src: /srv/indextts/cache
    dest: /srv/indextts/cache
    src_host: golden.example.com
    models:
      - facebook/w2v-bert-2.0
      - models--amphion--MaskGCT
    delete: true

- name: Copy from a local mount, verifying every blob
  indextts.deploy.model_cache_sync:
    src: /mnt/usb/indextts-cache
    dest: /srv/indextts/cache
    verify: all

# Golden seeds with indextts.deploy.cache_seed meanwhile (the model_cache role does both).
- name: Fetch the content from the swarm, this node's share of it from golden
  indextts.deploy.model_cache_sync:
    src: /srv/indextts/cache
    dest: /srv/indextts/cache
    src_host: 10.10.0.1
    src_user: cache-reader
    ssh_key: /root/.ssh/indextts_cache
    known_hosts: /etc/indextts/known_hosts
    transport: p2p
    swarm:
      torrent: /etc/indextts/swarm/indextts-cache.torrent
      address: 10.10.0.11
      origin: 10.10.0.1:6881
      peers: ["10.10.0.12:6881", "10.10.0.13:6881"]
      ssl_cert: /etc/indextts/swarm/member.pem
      ssl_key: /etc/indextts/swarm/member.key
"""

RETURN = r"""
swarm:
  description:
    - What the swarm did (O(transport=p2p)); V(null) when there was nothing to fetch.
  returned: when O(transport=p2p)
  type: dict
  contains:
    outcome:
      description: V(done), V(stalled) or V(timed out).
      type: str
    files:
      description: Files asked of the swarm.
      type: int
    bytes_wanted:
      description: Their size.
      type: int
    downloaded:
      description: Payload bytes downloaded from peers.
      type: int
    redundant:
      description:
        - Of RV(swarm.downloaded), the blocks that arrived twice (requested from a second
          peer in libtorrent's end game, or after a request timed out).
      type: int
    failed:
      description: Of RV(swarm.downloaded), the pieces that failed their hash check.
      type: int
    uploaded:
      description: Payload bytes this host sent to peers (V(null) when the swarm failed while it lingered).
      type: int
    rate:
      description: Bytes per second downloaded, over the swarm's time.
      type: int
    from_origin:
      description:
        - Of RV(swarm.downloaded), the bytes this node's own share brought from golden
          (O(swarm.origin)); V(null) when golden was an ordinary peer (no origin, or no other node).
      type: int
    seconds:
      description: Time from joining the swarm to having every file.
      type: float
    land_seconds:
      description: Time to put the downloaded files under their final names (each one synced to disk first).
      type: float
    linger_seconds:
      description:
        - Time this node went on seeding to the others once it had every file, beside
          the rest of the run (the rsync pass for the links and refs, verifying, publishing).
      type: float
    peers:
      description: The peers given.
      type: list
      elements: str
    fallback:
      description: Why rsync fetched the content instead, or V(null).
      type: str
  sample: {outcome: done, files: 12, bytes_wanted: 268435456, downloaded: 268435456, redundant: 0, failed: 0,
           uploaded: 201326592, rate: 25165824, seconds: 10.7, land_seconds: 0.4, linger_seconds: 2.1,
           peers: ["10.10.0.1:6881", "10.10.0.12:6881"], fallback: null}
changed_files:
  description: Paths (relative to O(dest)) that changed, in rsync's order, at most 200.
  returned: always
  type: list
  elements: str
  sample: [hub/models--org--m/blobs/3f2a..., hub/models--org--m/snapshots/c1/model.safetensors]
changed_files_count:
  description: How many paths changed in all (RV(changed_files) is capped).
  returned: always
  type: int
  sample: 2
stats:
  description: What rsync did, summed over the runs that moved data.
  returned: always
  type: dict
  contains:
    files_transferred:
      description: Regular files sent.
      type: int
    bytes_transferred:
      description: Bytes on the wire, both directions.
      type: int
    literal_bytes:
      description: File data sent as is.
      type: int
    matched_bytes:
      description: File data rebuilt from blocks the destination already had.
      type: int
    total_size:
      description: Size of all files of the source (in the selection), as the dry run counted it.
      type: int
    elapsed:
      description: Seconds spent in rsync, the dry run included (wall time; parallel runs count once).
      type: float
    verify_seconds:
      description:
        - Seconds spent hashing blobs after the transfer (what the hasher could not take
          while rsync wrote them, and blobs never verified before).
      type: float
    runs:
      description: Each rsync run (dry run, stages and their parallel runs, retries) and its seconds.
      type: list
      elements: dict
  sample: {files_transferred: 3, bytes_transferred: 3459012, literal_bytes: 3355443,
           matched_bytes: 63753421, total_size: 2147483648, elapsed: 4.21}
seeded_blobs:
  description: New blobs seeded from an older revision's blob before the transfer.
  returned: always
  type: list
  elements: dict
  sample: [{blob: hub/models--org--m/blobs/9b1c..., basis: hub/models--org--m/blobs/3f2a...}]
published_refs:
  description:
    - The refs this run published and the commit each names, as read once from the
      source at the start of the run (the plan). A source that gained a revision during
      the run is published as the plan saw it; the next run brings the newer one.
  returned: always
  type: dict
  sample: {"hub/models--org--m/refs/main": "3f2a6c0d9e8b7a6f5e4d3c2b1a0f9e8d7c6b5a49"}
source_moved:
  description:
    - True when the source's snapshots or refs changed between the dry run and the plan
      (the plan, the later look, was published), or, on failure, when the source changed
      during the run so that the plan could not be completed (nothing of it was published).
  returned: always
  type: bool
  sample: false
unresolved:
  description: Why the plan could not be completed, when the source changed during the run.
  returned: failure
  type: list
  elements: str
leftovers:
  description: What this run cleared or resumed of runs that were killed, in words.
  returned: always
  type: list
  elements: str
  sample: ["kept 1 interrupted blob transfer(s) as partial files to resume"]
lock_waited:
  description: Seconds this run waited for another run that held the lock of O(dest).
  returned: always
  type: float
  sample: 0.0
corrupt_blobs:
  description: Blobs that did not match their hash names (moved to C(.locks/indextts-sync/rejected/)).
  returned: failure
  type: list
  elements: str
  sample: [hub/models--org--m/blobs/9b1c...]
escaping_links:
  description: Links of the source refused because they leave their repo's blobs, as C(path -> target).
  returned: failure
  type: list
  elements: str
  sample: ["hub/models--org--m/blobs/sub -> /etc"]
verified_blobs:
  description: How many blobs were checked against their names.
  returned: always
  type: int
  sample: 3
attempts:
  description: Attempts the most troubled rsync run needed (1 when nothing failed).
  returned: always
  type: int
  sample: 1
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.indextts.deploy.plugins.module_utils._model_cache.sync import ModelCacheSync


def main():
    module = AnsibleModule(
        argument_spec=dict(
            src=dict(type="str", required=True),
            dest=dict(type="path", required=True),
            src_host=dict(type="str"),
            src_user=dict(type="str"),
            ssh_port=dict(type="int", default=22),
            ssh_key=dict(type="path"),
            known_hosts=dict(type="path"),
            host_key_checking=dict(type="bool", default=True),
            models=dict(type="list", elements="str"),
            delete=dict(type="bool", default=False),
            verify=dict(type="str", choices=["none", "new", "all"], default="new"),
            revision_delta=dict(type="bool", default=True),
            retries=dict(type="int", default=3),
            retry_delay=dict(type="float", default=5),
            timeout=dict(type="int", default=300),
            compress=dict(type="bool", default=False),
            bwlimit=dict(type="str"),
            streams=dict(type="int", default=0),
            owner=dict(type="str"),
            group=dict(type="str"),
            dir_times=dict(type="bool", default=True),
            link_dest=dict(type="list", elements="path"),
            lock_timeout=dict(type="int", default=1800),
            transport=dict(type="str", choices=["rsync", "p2p"], default="rsync"),
            swarm=dict(type="dict", options=dict(
                torrent=dict(type="path", required=True),
                manifest=dict(type="path"),
                address=dict(type="str", required=True),
                port=dict(type="int", default=6881),
                peers=dict(type="list", elements="str", default=[]),
                origin=dict(type="str"),
                ssl_cert=dict(type="path"),
                ssl_key=dict(type="path"),
                timeout=dict(type="int", default=3600),
                stall_timeout=dict(type="int", default=60),
                linger=dict(type="int", default=30),
                upload_limit=dict(type="int", default=0),
            ), required_together=[("ssl_cert", "ssl_key")]),
        ),
        required_by=dict(src_user="src_host", ssh_key="src_host", known_hosts="src_host"),
        required_if=[("transport", "p2p", ("swarm",))],
        supports_check_mode=True,
    )
    module.run_command_environ_update = {"LANG": "C", "LC_ALL": "C", "LC_MESSAGES": "C"}
    sync = ModelCacheSync(module)
    try:
        result = sync.run()
    finally:
        sync.close()
    module.exit_json(**result)


if __name__ == "__main__":
    main()
