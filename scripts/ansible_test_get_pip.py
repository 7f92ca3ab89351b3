"""Bootstrap pip into ansible-test's sanity environments without its download.

ansible-test creates each sanity environment without pip and runs a cached "get-pip" script to
put pip in; it downloads that script from a host of its own, which a machine that reaches only a
package index cannot. scripts/setup.sh installs this file in its place: pip comes from Python's
ensurepip, then the pip version ansible-test asked for from the configured index.
"""

import subprocess
import sys

# get-pip's own switches; pip install does not know them.
GET_PIP_ONLY = ("--no-setuptools", "--no-wheel")


def main():
    """Install pip, then the packages named on the command line (get-pip's interface)."""
    args = [arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY]
    subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"], stdout=subprocess.DEVNULL)
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q"] + args)


if __name__ == "__main__":
    main()
