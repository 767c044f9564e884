# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_netpersist: the interface checks, the backend choice, and each provider's
inspect -> plan -> apply on real files in a temporary root. The command output the
probes parse is captured from real systemd-networkd 252 and NetworkManager 1.42 (in a
lab container, fixtures/netpersist/); the files written are checked by the real tools
in molecule/storage_network (NetworkManager, ifupdown) and molecule/guest (networkd)."""

import os
import stat

import pytest

from ansible_collections.indextts.deploy.plugins.module_utils import _netpersist as np
from ansible_collections.indextts.deploy.plugins.module_utils._netpersist import ifupdown, networkd, networkmanager

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "netpersist")


def fixture(name):
    with open(os.path.join(FIXTURES, name)) as f:
        return f.read()


def links(*entries, mtu=9000):
    return np.check_links([dict({"mtu": None, "vlan": None, "vlan_address": None}, **e) for e in entries], mtu)


def write(root, path, text, mode=0o644):
    full = os.path.join(str(root), path.lstrip("/"))
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "w") as f:
        f.write(text)
    os.chmod(full, mode)
    return full


def apply(changes):
    for c in changes:
        np.write_file(c.path, c.after, c.mode)


def mode_of(path):
    return stat.S_IMODE(os.stat(path).st_mode)


# -- the interface entries -------------------------------------------------------------
@pytest.mark.parametrize("entries, mtu, message", [
    ([], 9000, "interfaces is empty; list this host's storage interfaces, for example [{name: eth1}]"),
    ([{"name": "eth1"}], 100, "mtu 100 is out of range; give an MTU from 576 to 65535 (9000 for jumbo frames)"),
    ([{"name": "eth 1"}], 9000, "interfaces[0].name 'eth 1' is not an interface name this module writes to "
                                "configuration: use letters, digits, '_', '-' and '.' (not first), for example "
                                "eth1 or enp3s0f1"),
    ([{"name": "eth1\n[Link]"}], 9000, "interfaces[0].name 'eth1\\n[Link]' is not an interface name"),
    ([{"name": ""}], 9000, "interfaces[0].name is empty; give the interface's name, for example eth1"),
    ([{"name": "enp0s31f6-storage"}], 9000, "interfaces[0].name 'enp0s31f6-storage' is 17 characters; Linux "
                                            "interface names have at most 15"),
    ([{"name": "eth1"}, {"name": "eth1", "mtu": 1500}], 9000,
     "interfaces[1] (eth1) is listed twice (also interfaces[0]); list each interface once"),
    ([{"name": "eth1", "mtu": 70000}], 9000, "interfaces[0] (eth1): mtu 70000 is out of range; give an MTU from "
                                             "576 to 65535"),
    ([{"name": "eth1", "vlan": 4095, "vlan_address": "10.0.0.1/24"}], 9000,
     "interfaces[0] (eth1): vlan 4095 is not a VLAN id; give 1 to 4094"),
    ([{"name": "eth1", "vlan": 0, "vlan_address": "10.0.0.1/24"}], 9000, "vlan 0 is not a VLAN id"),
    ([{"name": "eth1", "vlan": 100}], 9000, "interfaces[0] (eth1): vlan is given without vlan_address; give the "
                                            "VLAN interface's address with its prefix length, for example "
                                            "10.10.1.21/24"),
    ([{"name": "eth1", "vlan": 100, "vlan_address": "10.0.0.1"}], 9000,
     "interfaces[0] (eth1): vlan_address 10.0.0.1 has no prefix length; write it as address/prefix, for example "
     "10.0.0.1/24"),
    ([{"name": "eth1", "vlan": 100, "vlan_address": "10.0.0.300/24"}], 9000,
     "interfaces[0] (eth1): vlan_address 10.0.0.300/24 is not an address with a prefix length"),
    ([{"name": "eth1", "vlan": 100, "vlan_address": "10.0.0.1/33"}], 9000,
     "vlan_address 10.0.0.1/33 is not an address with a prefix length"),
    ([{"name": "eth1", "vlan_address": "10.0.0.1/24"}], 9000,
     "interfaces[0] (eth1): vlan_address 10.0.0.1/24 is given without vlan; add the VLAN id (vlan: 100) or drop "
     "vlan_address"),
    ([{"name": "enp0s31f610", "vlan": 1000, "vlan_address": "10.0.0.1/24"}], 9000,
     "interfaces[0] (enp0s31f610): the VLAN interface's name enp0s31f610.1000 is 16 characters, more than "
     "Linux's 15; rename the interface"),
    ([{"name": "eth1", "vlan": 100, "vlan_address": "10.0.0.1/24"}, {"name": "eth1.100"}], 9000,
     "interfaces: eth1.100 is listed as an interface and as the VLAN of eth1; list it once, as the VLAN "
     "(vlan: 100 on eth1)"),
])
def test_bad_entries_are_refused_naming_the_entry_and_the_fix(entries, mtu, message):
    with pytest.raises(np.InputError) as e:
        np.check_links([dict({"mtu": None, "vlan": None, "vlan_address": None}, **e) for e in entries], mtu)
    assert message in str(e.value), str(e.value)


def test_a_vlan_name_of_15_characters_is_allowed():
    assert links({"name": "enp0s31f61", "vlan": 1000, "vlan_address": "10.0.0.1/24"})[0].vlan_name == "enp0s31f61.1000"


def test_entries_take_the_default_mtu_and_parse_the_vlan_address():
    got = links({"name": "eth1"}, {"name": "eth2", "mtu": 1500, "vlan": 7, "vlan_address": "fd00:10::21/64"})
    assert [l.as_dict() for l in got] == [
        {"name": "eth1", "mtu": 9000},
        {"name": "eth2", "mtu": 1500, "vlan": 7, "vlan_name": "eth2.7", "vlan_address": "fd00:10::21/64"}]


# -- choosing the backend ----------------------------------------------------------------
NETWORKD = {"networkd": "/etc/systemd/network/20-storage.network"}
NM = {"networkmanager": {"name": "storage", "filename": "/etc/NetworkManager/system-connections/s.nmconnection"}}
IFUPDOWN = {"ifupdown": "/etc/network/interfaces"}


@pytest.mark.parametrize("requested, evidence, backend", [
    ("auto", {}, "none"),
    ("auto", {"networkd": None, "networkmanager": None, "ifupdown": None}, "none"),
    ("auto", IFUPDOWN, "ifupdown"),
    ("auto", dict(NM, **IFUPDOWN), "networkmanager"),
    ("auto", dict(NETWORKD, **dict(NM, **IFUPDOWN)), "networkd"),
    ("auto", dict(NETWORKD, **IFUPDOWN), "networkd"),
    ("networkmanager", dict(NETWORKD, **NM), "networkmanager"),
    ("ifupdown", dict(NM, **IFUPDOWN), "ifupdown"),
    ("none", dict(NETWORKD, **NM), "none"),
])
def test_backend_choice(requested, evidence, backend):
    assert np.choose_backend(requested, "eth1", evidence) == (backend, None)


def test_a_named_backend_that_does_not_manage_the_interface_is_refused_naming_the_one_that_does():
    backend, problem = np.choose_backend("networkd", "eth1", NM)
    assert backend is None
    assert problem == ("backend is networkd, but systemd-networkd does not manage eth1 (networkctl status shows "
                       "no .network file for it, or systemd-networkd is not running); its configuration is "
                       "networkmanager's: set backend to auto or networkmanager")


def test_a_named_backend_on_an_unconfigured_interface_says_how_to_go_on():
    backend, problem = np.choose_backend("ifupdown", "eth1", {})
    assert backend is None
    assert problem == ("backend is ifupdown, but ifupdown has no stanza for eth1 (no 'iface' line in "
                       "/etc/network/interfaces or the files it sources); configure the interface with ifupdown "
                       "first, or set backend to auto (or none, to set the MTU until the next reboot only)")


# -- systemd-networkd ----------------------------------------------------------------------
def test_networkctl_status_names_the_network_file():
    assert networkd.parse_network_file(fixture("networkctl_status_managed.txt")) == \
        "/etc/systemd/network/20-storage.network"
    assert networkd.parse_network_file(fixture("networkctl_status_unmanaged.txt")) is None
    assert networkd.parse_network_file("") is None


class Runs(object):
    """A stand-in for the module's runner: canned (rc, out, err) by argv, and the argv run."""

    def __init__(self, answers=None):
        self.answers = answers or {}
        self.calls = []

    def __call__(self, argv):
        self.calls.append(argv)
        return self.answers.get(tuple(argv), (0, "", ""))


def test_networkd_writes_a_dropin_and_the_vlan_files_then_nothing(tmp_path):
    p = networkd.Networkd(Runs(), str(tmp_path))
    ls = links({"name": "ens4"}, {"name": "ens5", "vlan": 100, "vlan_address": "10.99.100.2/24"})
    # One in /etc and one that netplan wrote in /run: both drop-ins go to /etc.
    evidence = {"ens4": "/etc/systemd/network/20-storage1.network", "ens5": "/run/systemd/network/10-netplan-ens5.network"}
    changes = p.plan(ls, evidence, p.inspect(ls, evidence, np.read_text))
    base = str(tmp_path / "etc" / "systemd" / "network")
    assert [(c.path[len(base) + 1:], c.mode, c.before) for c in changes] == [
        ("20-storage1.network.d/50-indextts-storage-mtu.conf", 0o644, None),
        ("10-netplan-ens5.network.d/50-indextts-storage-mtu.conf", 0o644, None),
        ("00-indextts-ens5.100.netdev", 0o644, None),
        ("00-indextts-ens5.100.network", 0o644, None)]
    assert [c.after for c in changes] == [
        "# indextts.deploy storage_network: jumbo frames on the storage network\n[Link]\nMTUBytes=9000\n",
        "# indextts.deploy storage_network: jumbo frames on the storage network\n[Link]\nMTUBytes=9000\n"
        "[Network]\nVLAN=ens5.100\n",
        "[NetDev]\nName=ens5.100\nKind=vlan\nMTUBytes=9000\n[VLAN]\nId=100\n",
        "[Match]\nName=ens5.100\n[Network]\nAddress=10.99.100.2/24\n"]
    apply(changes)
    assert mode_of(changes[0].path) == 0o644
    assert p.plan(ls, evidence, p.inspect(ls, evidence, np.read_text)) == []
    assert p.commands(ls, changes) == [] and p.activate([]) == [] and p.run.calls == []


def test_networkd_keeps_the_dropin_the_role_wrote_before_the_module(tmp_path):
    # The exact file persist.yml's copy task wrote: upgrading the role changes nothing.
    write(tmp_path, "/etc/systemd/network/20-storage1.network.d/50-indextts-storage-mtu.conf",
          "# indextts.deploy storage_network: jumbo frames on the storage network\n[Link]\nMTUBytes=9000\n")
    p = networkd.Networkd(Runs(), str(tmp_path))
    ls, evidence = links({"name": "ens4"}), {"ens4": "/etc/systemd/network/20-storage1.network"}
    assert p.plan(ls, evidence, p.inspect(ls, evidence, np.read_text)) == []
    ls = links({"name": "ens4", "mtu": 4000})
    (c,) = p.plan(ls, evidence, p.inspect(ls, evidence, np.read_text))
    assert c.before.endswith("MTUBytes=9000\n") and c.after.endswith("MTUBytes=4000\n")
    assert c.diff()["before_header"] == c.path


def test_networkd_probe_asks_networkctl_and_takes_no_answer_as_not_managed():
    runs = Runs({("networkctl", "status", "--no-pager", "ens4"): (0, fixture("networkctl_status_managed.txt"), ""),
                 ("networkctl", "status", "--no-pager", "eth9"): (1, "", "Interface \"eth9\" not found.")})
    p = networkd.Networkd(runs)
    assert p.probe("ens4") == "/etc/systemd/network/20-storage.network"
    assert p.probe("eth9") is None
    assert networkd.Networkd(lambda argv: None).probe("ens4") is None  # networkctl not installed


# -- ifupdown ------------------------------------------------------------------------------
DEBIAN_DEFAULT = """# This file describes the network interfaces available on your system
# and how to activate them. For more information, see interfaces(5).

source /etc/network/interfaces.d/*

# The loopback network interface
auto lo
iface lo inet loopback

# The primary network interface
allow-hotplug eth0
iface eth0 inet dhcp
# This is an autoconfigured IPv6 interface
iface eth0 inet6 auto

auto eth1
iface eth1 inet static
\taddress 10.10.1.21/24
\tmtu 1500
\tpost-up echo up
"""


def test_set_option_edits_only_the_interfaces_stanzas():
    out = ifupdown.set_option(DEBIAN_DEFAULT, "eth0", "mtu", 9000)
    assert out == DEBIAN_DEFAULT.replace("iface eth0 inet dhcp\n", "iface eth0 inet dhcp\n    mtu 9000\n").replace(
        "iface eth0 inet6 auto\n", "iface eth0 inet6 auto\n    mtu 9000\n")
    out = ifupdown.set_option(DEBIAN_DEFAULT, "eth1", "mtu", 9000)
    assert out == DEBIAN_DEFAULT.replace("\tmtu 1500\n", "\tmtu 9000\n")
    assert ifupdown.set_option(out, "eth1", "mtu", 9000) == out
    # No trailing newline, no options: the option still lands inside the stanza.
    assert ifupdown.set_option("auto eth2\niface eth2 inet manual", "eth2", "mtu", 9000) == \
        "auto eth2\niface eth2 inet manual\n    mtu 9000\n"


def test_sources_and_source_directory_follow_ifupdown_rules():
    text = "source interfaces.d/*\nsource-directory /etc/network/more.d\n"
    assert ifupdown.sources(text, "/etc/network") == [("source", "/etc/network/interfaces.d/*"),
                                                      ("source-directory", "/etc/network/more.d")]
    assert ifupdown.is_sourced("/etc/network/interfaces.d/indextts-storage-eth0-100", text, "/etc/network")
    # source-directory reads run-parts names only: no dots.
    assert ifupdown.is_sourced("/etc/network/more.d/indextts-storage-eth0-100", text, "/etc/network")
    assert not ifupdown.is_sourced("/etc/network/more.d/eth0.100", text, "/etc/network")
    assert not ifupdown.is_sourced("/etc/network/interfaces.d/x", "# source /etc/network/interfaces.d/*\n",
                                   "/etc/network")


def test_ifupdown_writes_mtu_where_the_stanzas_are_and_the_vlan_beside_them(tmp_path):
    main = write(tmp_path, "/etc/network/interfaces", DEBIAN_DEFAULT)
    # eth1 also has a stanza in a sourced file, and is edited there too.
    extra = write(tmp_path, "/etc/network/interfaces.d/eth1-v6", "iface eth1 inet6 static\n  address fd00::21/64\n",
                  0o640)
    p = ifupdown.Ifupdown(Runs(), str(tmp_path))
    assert p.probe("eth0", np.read_text) == main
    assert p.probe("eth3", np.read_text) is None
    ls = links({"name": "eth0"}, {"name": "eth1", "vlan": 100, "vlan_address": "10.10.100.21/24"})
    evidence = {"eth0": main, "eth1": main}
    changes = p.plan(ls, evidence, p.inspect(ls, evidence, np.read_text))
    vlan = str(tmp_path / "etc/network/interfaces.d/indextts-storage-eth1-100")
    assert [(c.path, c.mode, c.as_dict()["state"]) for c in changes] == [
        (main, 0o644, "changed"), (extra, 0o640, "changed"), (vlan, 0o644, "created")]
    assert changes[1].after == "iface eth1 inet6 static\n  mtu 9000\n  address fd00::21/64\n"
    assert changes[2].after == ("# indextts.deploy storage_network: VLAN 100 on eth1 for storage traffic\n"
                                "auto eth1.100\niface eth1.100 inet static\n    address 10.10.100.21/24\n"
                                "    mtu 9000\n    vlan-raw-device eth1\n")
    apply(changes)
    assert mode_of(extra) == 0o640 and mode_of(vlan) == 0o644
    assert p.plan(ls, evidence, p.inspect(ls, evidence, np.read_text)) == []


def ifupdown_vlan_refusal(root, interfaces):
    """The InputError planning VLAN 100 on eth0 raises, with ``interfaces`` as the main file."""
    main = write(root, "/etc/network/interfaces", interfaces)
    p = ifupdown.Ifupdown(Runs(), str(root))
    ls, evidence = links({"name": "eth0", "vlan": 100, "vlan_address": "10.98.100.10/24"}), {"eth0": main}
    with pytest.raises(np.InputError) as e:
        p.plan(ls, evidence, p.inspect(ls, evidence, np.read_text))
    return main, str(e.value)


def test_ifupdown_refuses_a_vlan_its_main_file_would_not_read(tmp_path):
    _main, message = ifupdown_vlan_refusal(tmp_path, "auto eth0\niface eth0 inet manual\n")
    assert message == ("eth0: its VLAN eth0.100 would go to /etc/network/interfaces.d/indextts-storage-eth0-100, "
                       "but /etc/network/interfaces does not read that directory; add the line "
                       "'source /etc/network/interfaces.d/*' to /etc/network/interfaces (Debian's default file "
                       "has it), or keep the VLAN elsewhere and drop vlan from this entry")


def test_ifupdown_refuses_a_vlan_someone_else_configured(tmp_path):
    main, message = ifupdown_vlan_refusal(tmp_path, "source /etc/network/interfaces.d/*\n"
                                          "iface eth0 inet manual\n\nauto eth0.100\niface eth0.100 inet dhcp\n")
    assert message == ("eth0: the VLAN eth0.100 already has a stanza in %s (line 5), which this module does not "
                       "edit; remove that stanza, or drop vlan from this entry and configure the VLAN there" % main)


def test_a_file_that_is_not_utf8_is_refused_by_name(tmp_path):
    path = tmp_path / "interfaces"
    path.write_bytes(b"iface eth0 inet manual\n# caf\xe9\n")
    with pytest.raises(np.InputError) as e:
        np.read_text(str(path))
    assert str(e.value) == ("%s is not UTF-8 text; this module edits configuration files only as text. Fix or "
                            "remove the bytes that are not UTF-8" % path)


# -- NetworkManager --------------------------------------------------------------------------
def test_terse_lines_split_on_unescaped_colons():
    assert networkmanager.split_terse(r"a\:b:c\\:d") == ["a:b", "c\\", "d"]
    assert networkmanager.split_terse("x::") == ["x", "", ""]


def test_active_profiles_parse_from_real_nmcli_output():
    active = networkmanager.parse_active(fixture("nmcli_active.txt"))
    assert active["eth0"]["name"] == "storage-eth0"
    assert active["eth0"]["type"] == "802-3-ethernet"
    assert active["eth0"]["filename"] == "/etc/NetworkManager/system-connections/storage-eth0.nmconnection"
    assert networkmanager.persistent(active["eth0"])
    assert list(active) == ["eth0"]


def test_profiles_in_memory_only_are_not_evidence():
    assert not networkmanager.persistent({"filename": "/run/NetworkManager/system-connections/eth1.nmconnection"})
    assert not networkmanager.persistent({"filename": ""})
    assert not networkmanager.persistent(None)


PROFILE = """[connection]
id=storage-eth0
uuid=0b8a3c55-1b5e-4f5c-9d6a-3f0e2a7c1d20
type=ethernet
interface-name=eth0

[ethernet]

[ipv4]
address1=10.98.1.21/24
method=manual

[ipv6]
addr-gen-mode=default
method=disabled

[proxy]
"""


@pytest.mark.parametrize("text, expected", [
    (PROFILE, PROFILE.replace("[ethernet]\n", "[ethernet]\nmtu=9000\n")),
    (PROFILE.replace("[ethernet]\n", "[ethernet]\nmtu=1500\ncloned-mac-address=preserve\n"),
     PROFILE.replace("[ethernet]\n", "[ethernet]\nmtu=9000\ncloned-mac-address=preserve\n")),
    (PROFILE.replace("[ethernet]\n", "[802-3-ethernet]\nmac-address=52:54:00:00:01:01\n"),
     PROFILE.replace("[ethernet]\n", "[802-3-ethernet]\nmac-address=52:54:00:00:01:01\nmtu=9000\n")),
    (PROFILE.replace("[ethernet]\n\n", ""), PROFILE.replace("[ethernet]\n\n", "") + "\n[ethernet]\nmtu=9000\n"),
])
def test_set_key_changes_one_line(text, expected):
    assert networkmanager.set_key(text, "ethernet", "mtu", 9000, ("802-3-ethernet",)) == expected


def nm_host(tmp_path, profile=PROFILE, filename="/etc/NetworkManager/system-connections/storage-eth0.nmconnection"):
    write(tmp_path, filename, profile, 0o600)
    active = "storage-eth0:0b8a3c55-1b5e-4f5c-9d6a-3f0e2a7c1d20:802-3-ethernet:eth0:%s\n" % filename.replace(":", "\\:")
    runs = Runs({("nmcli", "--terse", "--fields", "NAME,UUID,TYPE,DEVICE,FILENAME", "connection", "show",
                  "--active"): (0, active, "")})
    return networkmanager.NetworkManager(runs, str(tmp_path))


def test_networkmanager_sets_the_mtu_in_the_profile_and_writes_the_vlan_keyfile(tmp_path):
    p = nm_host(tmp_path)
    evidence = {"eth0": p.probe("eth0")}
    assert evidence["eth0"]["name"] == "storage-eth0"
    ls = links({"name": "eth0", "vlan": 100, "vlan_address": "10.98.100.21/24"})
    changes = p.plan(ls, evidence, p.inspect(ls, evidence, np.read_text))
    keyfiles = str(tmp_path / "etc/NetworkManager/system-connections")
    assert [(c.path, c.mode) for c in changes] == [
        (keyfiles + "/storage-eth0.nmconnection", 0o600), (keyfiles + "/indextts-storage-eth0.100.nmconnection", 0o600)]
    assert changes[0].after == PROFILE.replace("[ethernet]\n", "[ethernet]\nmtu=9000\n")
    vlan_uuid = networkmanager.vlan_uuid(ls[0])
    assert changes[1].after == (
        "# indextts.deploy storage_network: VLAN 100 on eth0 for storage traffic\n"
        "[connection]\nid=indextts-storage-eth0.100\nuuid=%s\ntype=vlan\ninterface-name=eth0.100\n"
        "autoconnect=true\n\n[ethernet]\nmtu=9000\n\n[vlan]\nid=100\nparent=eth0\n\n"
        "[ipv4]\naddress1=10.98.100.21/24\nmethod=manual\n\n[ipv6]\nmethod=disabled\n" % vlan_uuid)
    apply(changes)
    assert mode_of(changes[1].path) == 0o600
    commands = p.commands(ls, changes)
    assert commands == [
        ["nmcli", "connection", "load", keyfiles + "/storage-eth0.nmconnection"],
        ["nmcli", "connection", "load", keyfiles + "/indextts-storage-eth0.100.nmconnection"],
        ["nmcli", "--wait", "30", "connection", "up", "uuid", vlan_uuid]]
    assert p.activate(commands) == [" ".join(argv) for argv in commands]
    assert p.run.calls[1:] == commands
    # Nothing to write, but the VLAN's profile is not active (the probe saw only eth0's): it is brought up.
    assert p.plan(ls, evidence, p.inspect(ls, evidence, np.read_text)) == []
    assert p.commands(ls, []) == [["nmcli", "--wait", "30", "connection", "up", "uuid", vlan_uuid]]


def test_an_active_vlan_profile_with_its_files_as_wanted_needs_nothing(tmp_path):
    p = nm_host(tmp_path, profile=PROFILE.replace("[ethernet]\n", "[ethernet]\nmtu=9000\n"))
    ls = links({"name": "eth0", "vlan": 100, "vlan_address": "10.98.100.21/24"})
    p.active()["eth0.100"] = {"name": "indextts-storage-eth0.100", "uuid": networkmanager.vlan_uuid(ls[0]),
                              "type": "vlan", "filename": str(p.vlan_path(ls[0]))}
    write(tmp_path, "/etc/NetworkManager/system-connections/indextts-storage-eth0.100.nmconnection",
          networkmanager.vlan_keyfile(ls[0]), 0o600)
    evidence = {"eth0": p.probe("eth0")}
    assert p.plan(ls, evidence, p.inspect(ls, evidence, np.read_text)) == []
    assert p.commands(ls, []) == []


def test_the_vlan_uuid_is_the_same_in_check_mode_and_on_every_run():
    a = links({"name": "eth0", "vlan": 100, "vlan_address": "10.98.100.21/24"})[0]
    b = links({"name": "eth0", "vlan": 101, "vlan_address": "10.98.100.21/24"})[0]
    assert networkmanager.vlan_uuid(a) == networkmanager.vlan_uuid(a) != networkmanager.vlan_uuid(b)


def test_an_ipv6_vlan_address_goes_to_ipv6():
    link = links({"name": "eth0", "vlan": 100, "vlan_address": "fd00:100::21/64"})[0]
    text = networkmanager.vlan_keyfile(link)
    assert "[ipv4]\nmethod=disabled\n" in text and "[ipv6]\naddr-gen-mode=eui64\naddress1=fd00:100::21/64\n" in text
    assert "iface eth0.100 inet6 static\n    address fd00:100::21/64\n" in ifupdown.vlan_stanza(link)


def test_a_profile_of_another_settings_plugin_is_refused_with_what_to_do(tmp_path):
    p = nm_host(tmp_path, filename="/etc/sysconfig/network-scripts/ifcfg-eth0")
    evidence = {"eth0": p.probe("eth0")}
    with pytest.raises(np.InputError) as e:
        p.inspect(links({"name": "eth0"}), evidence, np.read_text)
    assert str(e.value) == (
        "eth0: its NetworkManager profile 'storage-eth0' is stored in /etc/sysconfig/network-scripts/ifcfg-eth0, not "
        "in a keyfile under /etc/NetworkManager/system-connections; this module edits keyfiles. Move the profile to "
        "one (nmcli connection migrate 0b8a3c55-1b5e-4f5c-9d6a-3f0e2a7c1d20, NetworkManager 1.38 and later), or set "
        "backend to the tool that owns /etc/sysconfig/network-scripts/ifcfg-eth0")


def test_networkmanager_not_running_is_no_evidence_and_is_not_told():
    runs = Runs({("nmcli", "--terse", "--fields", "NAME,UUID,TYPE,DEVICE,FILENAME", "connection", "show",
                  "--active"): (8, "", "Error: NetworkManager is not running.\n")})
    p = networkmanager.NetworkManager(runs)
    assert p.probe("eth0") is None
    assert p.commands(links({"name": "eth0", "vlan": 100, "vlan_address": "10.98.100.21/24"}),
                      [np.FileChange("/x", None, "y", 0o600, "r")]) == []
    assert networkmanager.NetworkManager(lambda argv: None).probe("eth0") is None


def test_a_failing_nmcli_load_names_the_command(tmp_path):
    p = nm_host(tmp_path)
    p.run.answers[("nmcli", "connection", "load", "/x")] = (1, "", "Error: failed to load connection: bad key\n")
    with pytest.raises(RuntimeError) as e:
        p.activate([["nmcli", "connection", "load", "/x"]])
    assert str(e.value) == "nmcli connection load /x failed (rc 1): Error: failed to load connection: bad key"


def test_a_file_nmcli_could_not_load_is_a_failure_though_nmcli_exits_0(tmp_path):
    # nmcli 1.42's answer to a keyfile it refuses (here one of mode 0644), exit status 0.
    p = nm_host(tmp_path)
    path = "/etc/NetworkManager/system-connections/loose.nmconnection"
    p.run.answers[("nmcli", "connection", "load", path)] = (0, "", "Could not load file '%s'\n" % path)
    with pytest.raises(RuntimeError) as e:
        p.activate([["nmcli", "connection", "load", path]])
    assert str(e.value) == ("nmcli connection load %s: NetworkManager refused the file (Could not load file '%s'); "
                            "its journal names the reason" % (path, path))


@pytest.mark.parametrize("parent", ["10-netplan-ens4.network", "20-storage1.network", "50-cloud-init.network",
                                    "99-default.network"])
def test_networkd_vlan_file_sorts_before_a_parent_file_that_matches_it_by_mac(parent):
    # networkd applies the first matching .network file in lexical order, and a VLAN has its
    # parent's MAC: the guest's 20-storage1.network (MACAddress=) gave ens4.100 ens4's address
    # while the VLAN's file was named 40-.
    p = networkd.Networkd(Runs(), "/")
    (link,) = links({"name": "ens4", "vlan": 100, "vlan_address": "10.99.100.2/24"})
    paths = p.paths(link, "/run/systemd/network/" + parent)
    assert os.path.basename(paths["network"]) < parent
