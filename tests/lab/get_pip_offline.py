# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Stand-in for the get-pip bootstrap script that ansible-test downloads from a host
this machine cannot reach (only the package index is reachable here).

ansible-test runs it inside a new virtualenv with pip's install arguments. It installs
pip from CPython's bundled ensurepip wheel, then the requested packages (pip at the
version ansible-test pins) from the package index, as the real script would.
tests/sanity.sh puts it where ansible-test looks for its cached copy.
"""

import subprocess
import sys

args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
# In a child process: ensurepip blanks pip's configuration (PIP_CONFIG_FILE=/dev/null)
# in the process that runs it, and the install below needs the site's configuration.
subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade"], stdout=subprocess.DEVNULL)
subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet"] + args)
