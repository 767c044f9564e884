# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""storage_network_persist's main(): its inputs, the backend choice from what the probes
answer (networkctl and nmcli mocked with output captured from the real tools,
module_utils/fixtures/netpersist), check mode, diff mode, idempotence, on real files
under a temporary root. The real backends read the files in molecule/storage_network
(NetworkManager, ifupdown) and molecule/guest (systemd-networkd)."""

import os
from unittest import mock

import pytest

from ansible_collections.indextts.deploy.plugins.modules import storage_network_persist

from harness import FIXTURES, run_module

NMCLI_ACTIVE = ["/usr/bin/nmcli", "--terse", "--fields", "NAME,UUID,TYPE,DEVICE,FILENAME", "connection", "show",
                "--active"]
NM_NOT_RUNNING = {"command": NMCLI_ACTIVE, "rc": 8, "err": "Error: NetworkManager is not running.\n"}
INTERFACES = "source /etc/network/interfaces.d/*\n\nauto lo\niface lo inet loopback\n\nauto eth0\niface eth0 inet manual\n"


def networkctl(name, managed=False):
    return {"command": ["/usr/bin/networkctl", "status", "--no-pager", name],
            "out": {"fixture": "netpersist/networkctl_status_%s.txt" % ("managed" if managed else "unmanaged")}}


def persist(root, params, commands=(), **kw):
    with mock.patch.object(storage_network_persist, "ROOT", str(root)):
        result, failed, _calls = run_module(storage_network_persist.main, params, commands, **kw)
    return result, failed


@pytest.fixture
def ifupdown_host(tmp_path):
    (tmp_path / "etc" / "network" / "interfaces.d").mkdir(parents=True)
    (tmp_path / "etc" / "network" / "interfaces").write_text(INTERFACES)
    return tmp_path


VLAN = {"interfaces": [{"name": "eth0", "vlan": 100, "vlan_address": "10.98.100.10/24"}]}


def test_auto_finds_ifupdown_check_mode_writes_nothing_then_apply_then_no_change(ifupdown_host):
    probes = [networkctl("eth0"), NM_NOT_RUNNING]
    result, failed = persist(ifupdown_host, VLAN, probes, check_mode=True, diff=True)
    assert not failed and result["changed"] is True
    vlan_file = str(ifupdown_host / "etc/network/interfaces.d/indextts-storage-eth0-100")
    assert [(c["path"], c["state"]) for c in result["changes"]] == [
        (str(ifupdown_host / "etc/network/interfaces"), "changed"), (vlan_file, "created")]
    assert result["interfaces"] == [{"name": "eth0", "mtu": 9000, "vlan": 100, "vlan_name": "eth0.100",
                                     "vlan_address": "10.98.100.10/24", "backend": "ifupdown",
                                     "evidence": str(ifupdown_host / "etc/network/interfaces")}]
    assert result["diff"][0]["before"] == INTERFACES
    assert result["diff"][0]["after"] == INTERFACES + "    mtu 9000\n"
    assert result["diff"][1]["before_header"] == vlan_file + " (absent)"
    assert not os.path.exists(vlan_file)
    assert (ifupdown_host / "etc/network/interfaces").read_text() == INTERFACES

    result, failed = persist(ifupdown_host, VLAN, probes)
    assert not failed and result["changed"] is True and result["commands"] == []
    assert (ifupdown_host / "etc/network/interfaces").read_text() == INTERFACES + "    mtu 9000\n"
    assert "iface eth0.100 inet static\n    address 10.98.100.10/24\n    mtu 9000\n" in open(vlan_file).read()

    result, failed = persist(ifupdown_host, VLAN, probes, diff=True)
    assert not failed and result["changed"] is False and result["changes"] == [] and result["diff"] == []


def test_auto_prefers_networkd_and_reports_interfaces_nothing_keeps(tmp_path):
    params = {"interfaces": [{"name": "ens4", "mtu": 4000}, {"name": "eth1"}]}
    # nmcli is asked once: its answer covers every interface.
    result, failed = persist(tmp_path, params, [networkctl("ens4", managed=True), NM_NOT_RUNNING,
                                                networkctl("eth1")])
    assert not failed and result["changed"] is True
    assert [(i["name"], i["backend"], i["mtu"]) for i in result["interfaces"]] == [
        ("ens4", "networkd", 4000), ("eth1", "none", 9000)]
    assert result["not_kept"] == ["eth1"]
    dropin = tmp_path / "etc/systemd/network/20-storage.network.d/50-indextts-storage-mtu.conf"
    assert dropin.read_text().endswith("[Link]\nMTUBytes=4000\n")


def test_networkmanager_writes_keyfiles_loads_them_and_brings_the_vlan_up(tmp_path):
    keyfiles = tmp_path / "etc/NetworkManager/system-connections"
    keyfiles.mkdir(parents=True)
    profile = keyfiles / "storage-eth0.nmconnection"
    profile.write_text("[connection]\nid=storage-eth0\ntype=ethernet\ninterface-name=eth0\n\n[ipv4]\nmethod=auto\n")
    os.chmod(str(profile), 0o600)
    # What nmcli answers names the host's path; the module reads it under its root.
    nm_active = {"command": NMCLI_ACTIVE, "out": {"fixture": "netpersist/nmcli_active.txt"}}
    params = {"interfaces": [{"name": "eth0", "vlan": 100, "vlan_address": "10.98.100.21/24"}], "backend": "networkmanager"}
    vlan = keyfiles / "indextts-storage-eth0.100.nmconnection"
    from ansible_collections.indextts.deploy.plugins.module_utils._netpersist.networkmanager import vlan_uuid
    from ansible_collections.indextts.deploy.plugins.module_utils._netpersist import check_links
    uuid = vlan_uuid(check_links([{"name": "eth0", "mtu": None, "vlan": 100, "vlan_address": "10.98.100.21/24"}],
                                 9000)[0])
    result, failed = persist(tmp_path, params, [
        networkctl("eth0"), nm_active,
        {"command": ["/usr/bin/nmcli", "connection", "load", str(profile)]},
        {"command": ["/usr/bin/nmcli", "connection", "load", str(vlan)]},
        {"command": ["/usr/bin/nmcli", "--wait", "30", "connection", "up", "uuid", uuid]}])
    assert not failed and result["changed"] is True, result
    assert profile.read_text().endswith("[ipv4]\nmethod=auto\n\n[ethernet]\nmtu=9000\n")
    assert oct(os.stat(str(vlan)).st_mode & 0o777) == "0o600"
    assert len(result["commands"]) == 3
    # Rerun: nothing to write, and the VLAN's profile is active now. Its line is written in
    # the captured line's format (this machine's kernel has no 802.1Q: no VLAN comes up here).
    with open(os.path.join(FIXTURES, "netpersist", "nmcli_active.txt")) as f:
        vlan_keyfile = "/etc/NetworkManager/system-connections/indextts-storage-eth0.100.nmconnection"
        listed = f.read() + "indextts-storage-eth0.100:%s:vlan:eth0.100:%s\n" % (uuid, vlan_keyfile)
    result, failed = persist(tmp_path, params, [networkctl("eth0"), {"command": NMCLI_ACTIVE, "out": listed}])
    assert not failed and result["changed"] is False and result["commands"] == []
    # Not active (brought down, or NetworkManager could not create it): check mode says it
    # would be brought up again, and runs nothing.
    result, failed = persist(tmp_path, params, [networkctl("eth0"), nm_active], check_mode=True)
    assert not failed and result["changed"] is True and result["changes"] == []
    assert result["commands"] == ["nmcli --wait 30 connection up uuid %s" % uuid]


def test_a_failing_nmcli_up_fails_naming_the_command_and_listing_the_files(tmp_path):
    keyfiles = tmp_path / "etc/NetworkManager/system-connections"
    keyfiles.mkdir(parents=True)
    (keyfiles / "storage-eth0.nmconnection").write_text("[connection]\nid=storage-eth0\n\n[ethernet]\nmtu=9000\n")
    vlan = keyfiles / "indextts-storage-eth0.100.nmconnection"
    result, failed = persist(tmp_path, {"interfaces": [{"name": "eth0", "vlan": 100, "vlan_address": "10.98.100.21/24"}]}, [
        networkctl("eth0"), {"command": NMCLI_ACTIVE, "out": {"fixture": "netpersist/nmcli_active.txt"}},
        {"command": ["/usr/bin/nmcli", "connection", "load", str(vlan)]},
        {"command": ["/usr/bin/nmcli", "--wait", "30", "connection", "up", "uuid", mock.ANY], "rc": 4,
         "err": "Error: Connection activation failed: No suitable device found for this connection.\n"}])
    assert failed
    assert result["msg"].startswith("networkmanager: the files are written, but telling it failed: nmcli --wait 30 "
                                    "connection up uuid ")
    assert result["msg"].endswith("failed (rc 4): Error: Connection activation failed: No suitable device found for "
                                  "this connection.; see journalctl -u NetworkManager")
    assert [c["path"] for c in result["changes"]] == [str(vlan)]


@pytest.mark.parametrize("params, commands, message", [
    ({"interfaces": []}, [], "interfaces is empty; list this host's storage interfaces, for example [{name: eth1}]"),
    ({"interfaces": [{"name": "eth0"}], "mtu": 10}, [],
     "mtu 10 is out of range; give an MTU from 576 to 65535 (9000 for jumbo frames)"),
    ({"interfaces": [{"name": "eth0/../x"}]}, [],
     "interfaces[0].name 'eth0/../x' is not an interface name this module writes to configuration"),
    ({"interfaces": [{"name": "eth0", "vlan": 100}]}, [],
     "interfaces[0] (eth0): vlan is given without vlan_address"),
    ({"interfaces": [{"name": "eth0", "vlan": 100, "vlan_address": "10.1.1.1/24\n[ipv4]"}]}, [],
     "interfaces[0] (eth0): vlan_address 10.1.1.1/24\n[ipv4] is not an address with a prefix length"),
    ({"interfaces": [{"name": "eth0"}], "backend": "networkd"}, [networkctl("eth0"), NM_NOT_RUNNING],
     "interfaces: eth0: backend is networkd, but systemd-networkd does not manage eth0 (networkctl status shows no "
     ".network file for it, or systemd-networkd is not running); its configuration is ifupdown's: set backend to "
     "auto or ifupdown"),
    ({"interfaces": [{"name": "eth0"}], "backend": "networkmanager"}, [networkctl("eth0"), NM_NOT_RUNNING],
     "interfaces: eth0: backend is networkmanager, but NetworkManager has no profile active on eth0"),
    ({"interfaces": [{"name": "eth2"}], "backend": "ifupdown"}, [networkctl("eth2"), NM_NOT_RUNNING],
     "interfaces: eth2: backend is ifupdown, but ifupdown has no stanza for eth2"),
])
def test_bad_input_fails_naming_it_and_changes_nothing(ifupdown_host, params, commands, message):
    before = (ifupdown_host / "etc/network/interfaces").read_text()
    result, failed = persist(ifupdown_host, params, commands)
    assert failed and message in result["msg"], result["msg"]
    assert (ifupdown_host / "etc/network/interfaces").read_text() == before
    assert os.listdir(str(ifupdown_host / "etc/network/interfaces.d")) == []


def test_an_unknown_entry_key_is_refused_by_the_argument_spec(ifupdown_host):
    result, failed = persist(ifupdown_host, {"interfaces": [{"name": "eth0", "vlan_adress": "10.1.1.1/24"}]})
    assert failed and "vlan_adress" in result["msg"], result["msg"]


def test_backend_none_probes_nothing_and_keeps_nothing(ifupdown_host):
    result, failed = persist(ifupdown_host, {"interfaces": [{"name": "eth0"}], "backend": "none"})
    assert not failed and result["changed"] is False and result["not_kept"] == ["eth0"]
    assert (ifupdown_host / "etc/network/interfaces").read_text() == INTERFACES


def test_a_file_it_cannot_write_fails_naming_it_and_the_files_written_before(ifupdown_host):
    real = storage_network_persist.write_file
    interfaces = str(ifupdown_host / "etc/network/interfaces")

    def write_file(path, content, mode):
        if path != interfaces:
            raise PermissionError(13, "Permission denied")
        real(path, content, mode)

    with mock.patch.object(storage_network_persist, "write_file", side_effect=write_file):
        result, failed = persist(ifupdown_host, VLAN, [networkctl("eth0"), NM_NOT_RUNNING])
    assert failed
    assert result["msg"] == ("ifupdown: could not write %s/etc/network/interfaces.d/indextts-storage-eth0-100 "
                             "(Permission denied (EACCES)) for VLAN eth0.100 (id 100, MTU 9000, address 10.98.100.10/24); "
                             "fix the cause and rerun (the files written before it are listed in changes)" % ifupdown_host)
    assert [c["path"] for c in result["changes"]] == [interfaces]
    assert result["interfaces"][0]["backend"] == "ifupdown"
