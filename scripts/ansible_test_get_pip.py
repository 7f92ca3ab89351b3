"""Bootstrap pip into ansible-test's sanity environments without its download.

ansible-test creates each sanity environment without pip and runs a cached "get-pip" script to
put pip in; it downloads that script from a host of its own, which a machine that reaches only a
package index (or nothing) cannot. scripts/setup.sh installs this file in its place, with WHEELS
set to the folder where it downloaded the wheels ansible-test pins: pip comes from Python's
ensurepip, then every install in the environment takes those wheels only.
"""

import os
import subprocess
import sys

# Set by scripts/setup.sh when it installs this file for ansible-test.
WHEELS = ""
# get-pip's own switches; pip install does not know them.
GET_PIP_ONLY = ("--no-setuptools", "--no-wheel")


def main():
    """Install pip, then the packages named on the command line (get-pip's interface)."""
    if WHEELS:
        # ansible-test passes no PIP_* variable to the pip it runs; the environment's own pip.conf
        # reaches this install and its later ones alike.
        with open(os.path.join(sys.prefix, "pip.conf"), "w") as handle:
            handle.write("[global]\nno-index = true\nfind-links = %s\n" % WHEELS)
    args = [arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY]
    subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"], stdout=subprocess.DEVNULL)
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q"] + args)


if __name__ == "__main__":
    main()
