# -*- coding: utf-8 -*-
# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The machinery of indextts.deploy.model_cache_sync, one job per file.

A run goes through its phases in order (sync.ModelCacheSync.run):

  inspect  guards.py   the inputs, before anything runs
           state.py    dest's lock, the leftovers of killed runs, the record of verified blobs
  plan     plan.py     what the dry run says changes, cut into runs; escaping links; room
  stage    transport.py  the plan's snapshot links and refs read once from src, then the
                       content moved (rsync, delta-aware, in parallel runs)
           seed.py     older blobs of the same files as the basis of the new ones' delta
  verify   verify.py   every blob the plan needs matches its sha256 name
  publish  publish.py  the plan's snapshots then refs, from the plan, never from src again
  report   sync.py

The transport is the one part that knows how bytes move; the other phases read and
write only dest and the state dir (dest/.locks/indextts-sync). swarm.py is the
peer-to-peer transport (transport=p2p).

Golden's side of the swarm is here too, one module each:

  torrent_file.py  indextts.deploy.cache_torrent: the torrent of the cache and its manifest
  seeder.py        indextts.deploy.cache_seed: golden seeding the cache until the nodes are done
"""
