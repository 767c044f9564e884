# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_torrent: which files of a cache go into the torrent (pure), and real libtorrent
swarms on loopback addresses (127.0.0.x only), on a fake Hugging Face cache of a few
MiB: complete transfers compared byte for byte, file-level resume, the allow-list,
SSL torrents with a per-deployment CA, a stalled swarm, listening."""

import datetime
import hashlib
import os
import random
import socket
import time

import pytest

from ansible_collections.indextts.deploy.plugins.module_utils import _torrent
from ansible_collections.indextts.deploy.plugins.module_utils._torrent import in_torrent, parse_peer

NAME = "indextts-cache"
REPO = "models--org--name"
GOLDEN, NODE1, NODE2, INTRUDER, NODE3 = "127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"
# Content files of the fake cache: path in the snapshot -> size. Sizes off piece
# boundaries, one small git blob (sha1 name).
SNAPSHOT = {"model.safetensors": 2 * 1024 * 1024 + 7, "sub/config.bin": 700 * 1024 + 3,
            "tokenizer.json": 300 * 1024, "README.md": 1000}


# -- which files: pure rules --------------------------------------------------------


@pytest.mark.parametrize("rel", [
    "models--a--b/blobs/" + "0" * 64,
    "models--a--b/blobs/" + "0" * 40,
    "datasets--a/blobs/x",
    "CACHEDIR.TAG",
    "other/refs/x",  # refs only counts in a repo dir
    "models--a--b/blobs/refs",
])
def test_in_torrent_takes_content(rel):
    assert in_torrent(rel)


@pytest.mark.parametrize("rel", [
    "models--a--b/refs/main",
    "models--a--b/refs/pr/1",
    "models--a--b/.no_exist/c1/missing.json",
    ".locks/models--a--b/" + "0" * 64 + ".lock",
    ".locks/indextts-sync/lock",
    "models--a--b/.locks/x",
    ".indextts-partial/models--a--b/blobs/x",
    "models--a--b/blobs/.indextts-partial/x",
    "models--a--b/blobs/" + "0" * 64 + ".incomplete",
    "models--a--b/blobs/",
])
def test_in_torrent_leaves_out_metadata_locks_and_partial_files(rel):
    assert not in_torrent(rel)


def test_parse_peer():
    assert parse_peer("10.0.0.5:6881") == ("10.0.0.5", 6881)
    assert parse_peer(" [fd00::0005]:6881 ") == ("fd00::5", 6881)
    for bad in ("10.0.0.5", "fd00::5:6881", "node1:6881", "10.0.0.5:0", "10.0.0.5:70000", "[10.0.0.5]x:1", ":1"):
        with pytest.raises(ValueError):
            parse_peer(bad)


def test_valid_name():
    assert _torrent.valid_name(NAME)
    for bad in ("", ".", "..", "a/b", "a\\b", "a\0b", "x" * 256):
        assert not _torrent.valid_name(bad)


# -- a fake Hugging Face cache ------------------------------------------------------


def make_cache(root, snapshot=None, seed=0):
    """A hub cache at root with one repo: blobs named by their hash, snapshot links to
    them, refs/main, and the things that never travel (.no_exist, .locks, a partial
    dir, an incomplete blob, a link to a directory). Returns {blob path: bytes}."""
    rng = random.Random(seed)
    repo = os.path.join(root, REPO)
    commit = "c0ffee" + "0" * 34
    content = {}
    for path, size in sorted((snapshot or SNAPSHOT).items()):
        data = rng.randbytes(size)
        name = hashlib.sha1(data).hexdigest() if size < 10000 else hashlib.sha256(data).hexdigest()
        blob = os.path.join(repo, "blobs", name)
        os.makedirs(os.path.dirname(blob), exist_ok=True)
        with open(blob, "wb") as f:
            f.write(data)
        link = os.path.join(repo, "snapshots", commit, path)
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink(os.path.relpath(blob, os.path.dirname(link)), link)
        content["%s/blobs/%s" % (REPO, name)] = data
    for rel, data in (("refs/main", commit.encode()), (".no_exist/%s/missing.json" % commit, b""),
                      ("blobs/%s.incomplete" % ("f" * 64), b"half")):
        write(os.path.join(repo, rel), data)
    write(os.path.join(root, ".locks", REPO, "f" * 64 + ".lock"), b"")
    write(os.path.join(root, ".locks", "indextts-sync", "lock"), b"")
    write(os.path.join(root, ".indextts-partial", REPO, "blobs", "e" * 64), b"partial")
    os.symlink(os.path.join(repo, "blobs"), os.path.join(root, "linked-dir"))
    return content


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def read_tree(root):
    """{relative path: bytes} of the regular files under root (links excluded)."""
    out = {}
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            full = os.path.join(dirpath, name)
            if not os.path.islink(full):
                with open(full, "rb") as f:
                    out[os.path.relpath(full, root)] = f.read()
    return out


def test_regular_files_are_the_blobs_only(tmp_path):
    content = make_cache(str(tmp_path))
    files = _torrent.regular_files(str(tmp_path))
    assert files == sorted(content)
    assert len(files) == len(SNAPSHOT)


# -- real libtorrent ----------------------------------------------------------------


@pytest.fixture
def cache(tmp_path, lt):
    root = str(tmp_path / "golden")
    content = make_cache(root)
    return root, content, _torrent.make_torrent(root, _torrent.regular_files(root), NAME)


def one(swarm):
    (progress,) = swarm.progress().values()
    return progress


def test_make_torrent_v2_only_private_deterministic_with_exactly_the_regular_files(cache, lt):
    root, content, torrent = cache
    assert _torrent.torrent_files(torrent) == sorted(content)
    ti = lt.torrent_info(lt.bdecode(torrent))
    assert ti.name() == NAME
    assert ti.info_hashes().has_v2() and not ti.info_hashes().has_v1()
    assert ti.priv()
    assert not ti.ssl_cert()
    assert ti.total_size() >= sum(len(d) for d in content.values())
    fs = ti.layout() if hasattr(ti, "layout") else ti.files()
    sizes = {fs.file_path(i).replace(NAME + "/", "", 1): fs.file_size(i) for i in range(fs.num_files())
             if not fs.file_flags(i) & lt.file_storage.flag_pad_file}
    assert sizes == {rel: len(data) for rel, data in content.items()}
    decoded = lt.bdecode(torrent)
    assert b"creation date" not in decoded and b"announce" not in decoded
    # the same files make the same bytes; other content another torrent
    assert _torrent.make_torrent(root, _torrent.regular_files(root), NAME) == torrent
    with open(os.path.join(root, sorted(content)[0]), "r+b") as f:
        f.write(b"x")
    assert _torrent.make_torrent(root, _torrent.regular_files(root), NAME) != torrent
    with pytest.raises(ValueError):
        _torrent.make_torrent(root, sorted(content), NAME, piece_size=3 * 16384)
    with pytest.raises(ValueError):
        _torrent.make_torrent(root, sorted(content), "a/b")
    with pytest.raises(ValueError):
        _torrent.make_torrent(root, [], NAME)


def test_a_seeder_and_two_fetchers_end_with_identical_bytes(tmp_path, cache, swarms):
    root, content, torrent = cache
    before = read_tree(root)
    golden = swarms(GOLDEN, allowed=[NODE1, NODE2])
    node1 = swarms(NODE1, allowed=[GOLDEN, NODE2])
    node2 = swarms(NODE2, allowed=[GOLDEN, NODE1])
    golden.seed(torrent, root)
    node1.fetch(torrent, str(tmp_path / "n1"), [(GOLDEN, golden.port), (NODE2, node2.port)])
    node2.fetch(torrent, str(tmp_path / "n2"), ["%s:%d" % (GOLDEN, golden.port), "%s:%d" % (NODE1, node1.port)])
    seen = []
    assert node1.wait(30, 10, on_progress=seen.append) == _torrent.DONE
    assert node2.wait(30, 10) == _torrent.DONE
    for node, where in ((node1, "n1"), (node2, "n2")):
        assert read_tree(str(tmp_path / where)) == content  # the blobs, byte for byte, nothing else
        p = one(node)
        assert p["finished"] and p["total_done"] == p["total_wanted"] == sum(len(d) for d in content.values())
    total = sum(len(d) for d in content.values())
    assert one(node1)["downloaded"] + one(node2)["downloaded"] >= 2 * total
    assert one(golden)["uploaded"] > 0
    assert seen and set(seen[-1]) == set(node1.progress())
    assert read_tree(root) == before  # seeding in place changed nothing


def test_a_fetcher_downloads_only_the_files_it_lacks_and_the_pieces_that_are_wrong(tmp_path, cache, swarms, lt):
    root, content, torrent = cache
    node_dir = tmp_path / "n1"
    by_size = sorted(content, key=lambda rel: len(content[rel]))
    have, corrupt, missing = by_size[-1], by_size[-2], by_size[:-2]
    write(str(node_dir / have), content[have])
    # the same size, the last byte wrong: a v2 torrent hashes each file's pieces
    write(str(node_dir / corrupt), content[corrupt][:-1] + bytes([content[corrupt][-1] ^ 1]))
    have_mtime = os.stat(str(node_dir / have)).st_mtime_ns
    golden = swarms(GOLDEN, allowed=[NODE1])
    node = swarms(NODE1, allowed=[GOLDEN])
    golden.seed(torrent, root)
    node.fetch(torrent, str(node_dir), [(GOLDEN, golden.port)])
    assert node.wait(30, 10) == _torrent.DONE
    assert read_tree(str(node_dir)) == content
    piece = lt.torrent_info(lt.bdecode(torrent)).piece_length()
    assert len(content[corrupt]) > 4 * piece
    needed = sum(len(content[rel]) for rel in missing) + (len(content[corrupt]) % piece or piece)
    downloaded = one(node)["downloaded"]
    # the missing files and the corrupt file's last piece travelled, nothing else
    # (2.0.8 counts each file's last 16 KiB block whole: up to a block more per file)
    assert needed <= downloaded <= needed + 16384 * (len(missing) + 1), (downloaded, needed)
    assert downloaded < len(content[have]) // 4
    assert os.stat(str(node_dir / have)).st_mtime_ns == have_mtime


def test_a_peer_not_on_the_allow_list_gets_nothing(tmp_path, cache, swarms):
    root, content, torrent = cache
    golden = swarms(GOLDEN, allowed=[NODE1])
    golden.seed(torrent, root)
    intruder = swarms(INTRUDER, allowed=[GOLDEN])
    intruder.fetch(torrent, str(tmp_path / "intruder"), [(GOLDEN, golden.port)])
    assert intruder.wait(3, 60) == _torrent.TIMED_OUT
    p = one(intruder)
    assert p["total_done"] == 0 and p["downloaded"] == 0 and not p["finished"]
    assert one(golden)["uploaded"] == 0
    assert any("peer_blocked_alert" in m and INTRUDER in m for m in golden.messages), golden.messages
    # the same seeder serves the address it allows
    node = swarms(NODE1, allowed=[GOLDEN])
    node.fetch(torrent, str(tmp_path / "n1"), [(GOLDEN, golden.port)])
    assert node.wait(30, 10) == _torrent.DONE
    assert read_tree(str(tmp_path / "n1")) == content
    assert b"".join(read_tree(str(tmp_path / "intruder")).values()).strip(b"\0") == b""
    # a node does not dial an address its own allow-list leaves out
    with pytest.raises(_torrent.SwarmError, match="not on the allow-list: 127.0.0.3"):
        node.fetch(torrent, str(tmp_path / "n1b"), [(NODE2, 6881)])


# -- SSL torrents -------------------------------------------------------------------


def make_ca(common_name):
    x509, NameOID, hashes, ec = crypto()
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(key, hashes.SHA256()))
    return cert, key


def make_node_cert(ca, directory, common_name, san):
    """A node certificate signed by ca, SAN DNS:<san>; (cert file, key file)."""
    from cryptography.hazmat.primitives import serialization
    x509, NameOID, hashes, ec = crypto()
    ca_cert, ca_key = ca
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(ca_cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(san)]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    os.makedirs(directory)
    paths = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    write(paths[0], cert.public_bytes(serialization.Encoding.PEM))
    write(paths[1], key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    os.chmod(paths[1], 0o600)
    return paths


def crypto():
    pytest.importorskip("cryptography")
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    return x509, NameOID, hashes, ec


def pem(cert):
    from cryptography.hazmat.primitives import serialization
    return cert.public_bytes(serialization.Encoding.PEM)


def test_ssl_torrent_nodes_of_the_deployment_ca_complete_others_are_refused(tmp_path, cache, swarms, lt):
    root, content, _plain = cache
    ca, other_ca = make_ca("deployment CA"), make_ca("another CA")
    torrent = _torrent.make_torrent(root, _torrent.regular_files(root), NAME, root_cert_pem=pem(ca[0]))
    assert lt.torrent_info(lt.bdecode(torrent)).ssl_cert().strip() == pem(ca[0]).decode().strip()
    certs = str(tmp_path / "certs")
    golden = swarms(GOLDEN, allowed=[NODE1, NODE2, NODE3, INTRUDER], ssl=True)
    golden.set_ssl_certificate(*make_node_cert(ca, os.path.join(certs, "golden"), "golden", NAME))
    golden.seed(torrent, root)
    node = swarms(NODE1, allowed=[GOLDEN], ssl=True)
    node.set_ssl_certificate(*make_node_cert(ca, os.path.join(certs, "n1"), "n1", NAME))
    node.fetch(torrent, str(tmp_path / "n1"), [(GOLDEN, golden.port)])
    # same name, another CA; the right CA, a name that is not the torrent's
    rogue = swarms(INTRUDER, allowed=[GOLDEN], ssl=True)
    rogue.set_ssl_certificate(*make_node_cert(other_ca, os.path.join(certs, "rogue"), "rogue", NAME))
    rogue.fetch(torrent, str(tmp_path / "rogue"), [(GOLDEN, golden.port)])
    misnamed = swarms(NODE2, allowed=[GOLDEN], ssl=True)
    misnamed.set_ssl_certificate(*make_node_cert(ca, os.path.join(certs, "n2"), "n2", "other-deployment"))
    misnamed.fetch(torrent, str(tmp_path / "n2"), [(GOLDEN, golden.port)])
    # a name that is the start of the torrent's: 2.0 compares a prefix, 2.1 the whole
    prefixed = swarms(NODE3, allowed=[GOLDEN], ssl=True)
    prefixed.set_ssl_certificate(*make_node_cert(ca, os.path.join(certs, "n3"), "n3", NAME[:8]))
    prefixed.fetch(torrent, str(tmp_path / "n3"), [(GOLDEN, golden.port)])
    assert node.wait(30, 10) == _torrent.DONE
    assert read_tree(str(tmp_path / "n1")) == content
    assert rogue.wait(3, 60) == _torrent.TIMED_OUT
    for refused in (rogue, misnamed):
        p = one(refused)
        assert p["total_done"] == 0 and p["downloaded"] == 0, p
    assert any("SSL" in m or "ssl" in m for m in rogue.messages), rogue.messages
    if tuple(int(n) for n in lt.__version__.split(".")[:2]) >= (2, 1):
        assert one(prefixed)["total_done"] == 0
        assert one(golden)["uploaded"] == one(node)["downloaded"]
    else:
        assert prefixed.wait(30, 10) == _torrent.DONE


def test_ssl_torrents_need_a_certificate_and_an_ssl_swarm(tmp_path, cache, swarms):
    root, _content, plain = cache
    torrent = _torrent.make_torrent(root, _torrent.regular_files(root), NAME, root_cert_pem=pem(make_ca("ca")[0]))
    with pytest.raises(_torrent.SwarmError, match="set_ssl_certificate"):
        swarms(GOLDEN, ssl=True).seed(torrent, root)
    with pytest.raises(_torrent.SwarmError, match="is an SSL torrent"):
        swarms(NODE1).seed(torrent, root)
    with pytest.raises(_torrent.SwarmError, match="is not an SSL torrent"):
        swarms(NODE2, ssl=True).seed(plain, root)
    with pytest.raises(_torrent.SwarmError, match="missing"):
        swarms(INTRUDER, ssl=True).set_ssl_certificate(str(tmp_path / "none.pem"), str(tmp_path / "none.key"))


# -- stalls and listening -----------------------------------------------------------


def test_a_swarm_whose_seeder_left_is_stalled(tmp_path, cache, swarms):
    root, content, torrent = cache
    golden = swarms(GOLDEN, allowed=[NODE1], upload_limit=512 * 1024)
    golden.seed(torrent, root)
    node = swarms(NODE1, allowed=[GOLDEN])
    node.fetch(torrent, str(tmp_path / "n1"), [(GOLDEN, golden.port)])
    deadline = time.monotonic() + 20
    while one(node)["total_done"] == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    golden.close()
    start = time.monotonic()
    assert node.wait(30, 2) == _torrent.STALLED
    assert time.monotonic() - start < 10
    p = one(node)
    assert 0 < p["total_done"] < p["total_wanted"], p
    assert p["peers"] == 0


def test_a_swarm_listens_on_its_address_and_port_only(swarms):
    taken = socket.socket()
    try:
        taken.bind(("127.0.0.6", 0))
        taken.listen(1)
        with pytest.raises(_torrent.SwarmError, match="cannot listen on 127.0.0.6:%d" % taken.getsockname()[1]):
            swarms("127.0.0.6", port=taken.getsockname()[1])
    finally:
        taken.close()
    swarm = swarms("127.0.0.7")
    assert swarm.port
    with socket.create_connection(("127.0.0.7", swarm.port), 2):
        pass
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.8", swarm.port), 2).close()
    with pytest.raises(ValueError):
        swarms("node1.example")


# -- the origin's share: who asks golden for which piece (pure) ------------------------

MEMBERS = ["10.0.0.2", "10.0.0.3", "10.0.0.4"]


def asked(lacking, views):
    """Each member's origin_pieces, given its own view: {member: kwargs}."""
    return dict((m, _torrent.origin_pieces(lacking, MEMBERS, m, **kwargs)) for m, kwargs in views.items())


def each_once(got, pieces):
    """Whether the members' asks cover ``pieces`` with each piece asked exactly once."""
    return sorted(p for asks in got.values() for p in asks) == sorted(pieces)


def test_origin_pieces_split_what_the_nodes_lack_among_them_once_each():
    lacking = list(range(30))
    got = asked(lacking, dict((m, {}) for m in MEMBERS))  # at the start: everyone counts as there
    assert each_once(got, lacking)
    assert sorted(len(asks) for asks in got.values()) == [10, 10, 10]
    everyone = asked(lacking, dict((m, {"present": set(MEMBERS) - {m}}) for m in MEMBERS))
    assert everyone == got


def test_origin_pieces_of_a_node_that_never_came_go_to_those_that_did():
    lacking = list(range(30))
    came = ["10.0.0.2", "10.0.0.4"]
    got = asked(lacking, dict((m, {"present": set(came) - {m}}) for m in came))
    assert each_once(got, lacking)
    assert sorted(len(asks) for asks in got.values()) == [15, 15]


def test_origin_pieces_a_finished_node_brings_the_pieces_it_has_and_no_others():
    # 10.0.0.4 finished with pieces 0-14 (it wants no others): golden is asked for none
    # of those, and the two others split 15-29 between them.
    lacking, has = list(range(30)), set(range(15))
    fetching = ["10.0.0.2", "10.0.0.3"]
    got = asked(lacking, dict((m, {"present": set(MEMBERS) - {m}, "finished": {"10.0.0.4": has}}) for m in fetching))
    assert each_once(got, range(15, 30))
    assert sorted(len(asks) for asks in got.values()) == [7, 8]


def test_origin_pieces_rescue_asks_for_what_no_peer_offers_whoever_owns_it():
    mine = _torrent.origin_pieces(range(6), MEMBERS, "10.0.0.2")
    assert _torrent.origin_pieces(range(6), MEMBERS, "10.0.0.2", rescue=[1, 2, 99]) == mine | {1, 2}


# -- the origin's share: real libtorrent -------------------------------------------------


def test_with_an_origin_golden_sends_each_piece_once_and_the_nodes_the_rest(tmp_path, cache, swarms):
    root, content, torrent = cache
    nodes = [NODE1, NODE2, NODE3]
    golden = swarms(GOLDEN, allowed=nodes)  # it calls nobody: the nodes' links call it
    golden.seed(torrent, root)
    fetchers = {}
    for node in nodes:
        others = [n for n in nodes if n != node]
        fetchers[node] = swarms(node, port=free_port(node), allowed=others)
    for node, swarm in fetchers.items():
        swarm.fetch(torrent, str(tmp_path / node / "a"), [(n, fetchers[n].port) for n in nodes if n != node],
                    origin=(GOLDEN, golden.port), origin_path=str(tmp_path / node / "origin"))
    total = sum(len(d) for d in content.values())
    for node, swarm in fetchers.items():
        assert swarm.wait(60, 20) == _torrent.DONE
        assert read_tree(str(tmp_path / node / "a")) == content
        p = one(swarm)
        assert 0 < p["from_origin"] < total, p  # a share, not the whole
        assert p["downloaded"] >= total
    # golden sent each piece about once, and only to the links (what they received
    # counts each block once or more; the nodes' swarms never reached golden)
    uploaded = one(golden)["uploaded"]
    assert total <= uploaded <= 1.1 * total, (uploaded, total)
    assert uploaded <= sum(one(s)["from_origin"] for s in fetchers.values())


def test_with_an_origin_the_share_of_a_node_that_never_came_is_taken_over(tmp_path, cache, swarms, monkeypatch):
    monkeypatch.setattr(_torrent, "SHARE_GRACE_SECONDS", 1.0)
    root, content, torrent = cache
    golden = swarms(GOLDEN, allowed=[NODE1, NODE2, NODE3])
    golden.seed(torrent, root)
    node1 = swarms(NODE1, port=free_port(NODE1), allowed=[NODE2, NODE3])
    node2 = swarms(NODE2, port=free_port(NODE2), allowed=[NODE1, NODE3])
    absent = (NODE3, free_port(NODE3))  # listed, never comes
    node1.fetch(torrent, str(tmp_path / "n1"), [(NODE2, node2.port), absent], origin=(GOLDEN, golden.port),
                origin_path=str(tmp_path / "o1"))
    node2.fetch(torrent, str(tmp_path / "n2"), [(NODE1, node1.port), absent], origin=(GOLDEN, golden.port),
                origin_path=str(tmp_path / "o2"))
    assert node1.wait(60, 20) == _torrent.DONE
    assert node2.wait(60, 20) == _torrent.DONE
    assert read_tree(str(tmp_path / "n1")) == read_tree(str(tmp_path / "n2")) == content
    total = sum(len(d) for d in content.values())
    assert one(golden)["uploaded"] <= 1.5 * total  # the absent node's third, mostly once


def test_with_an_origin_and_no_other_node_golden_is_the_one_peer(tmp_path, cache, swarms):
    root, content, torrent = cache
    golden = swarms(GOLDEN, allowed=[NODE1])
    golden.seed(torrent, root)
    node = swarms(NODE1, allowed=[GOLDEN])
    node.fetch(torrent, str(tmp_path / "n1"), [], origin=(GOLDEN, golden.port), origin_path=str(tmp_path / "o"))
    assert node.wait(30, 10) == _torrent.DONE
    assert read_tree(str(tmp_path / "n1")) == content
    assert "from_origin" not in one(node) and not os.path.exists(str(tmp_path / "o"))


def test_an_origin_among_the_peers_or_without_a_place_for_its_share_is_refused(tmp_path, cache, swarms):
    _root, _content, torrent = cache
    node = swarms(NODE1, allowed=[GOLDEN, NODE2])
    with pytest.raises(_torrent.SwarmError, match="the origin 127.0.0.1:7000 is also among the peers"):
        node.fetch(torrent, str(tmp_path / "n1"), [(GOLDEN, 7000), (NODE2, 7001)], origin=(GOLDEN, 7000),
                   origin_path=str(tmp_path / "o"))
    with pytest.raises(_torrent.SwarmError, match="needs origin_path"):
        node.fetch(torrent, str(tmp_path / "n1"), [(NODE2, 7001)], origin=(GOLDEN, 7000))


def free_port(address):
    with socket.socket() as s:
        s.bind((address, 0))
        return s.getsockname()[1]
