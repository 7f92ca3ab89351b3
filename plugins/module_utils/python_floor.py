# Copyright: (c) 2026, ingester-capture contributors; MIT License (see LICENSE)
"""The host Python's floor, checked before anything newer is imported.

No syntax newer than Python 3.0 and no annotations here: an old interpreter must get one line that
says what it found, not a traceback. ansible-core's own refusal does not name the interpreter.
"""

import json
import sys

MIN_PYTHON = (3, 8)


def python_problem(version_info=None, executable=None):
    """One line when the interpreter is too old, else None."""
    found = tuple(version_info or sys.version_info)[:3]
    if found[:2] >= MIN_PYTHON:
        return None
    return "Python %s at %s is too old for ingester-capture: the host needs Python %d.%d or newer" % (
        ".".join(str(x) for x in found),
        executable or sys.executable,
        MIN_PYTHON[0],
        MIN_PYTHON[1],
    )


def refuse_old_python():
    """Print the module's failed result and end the run when the interpreter is too old.

    The exit is here rather than in a module because it runs before AnsibleModule can be
    imported (and fail_json with it): ansible.module_utils.basic itself needs Python 3.8.
    """
    problem = python_problem()
    if problem is not None:
        print(json.dumps({"failed": True, "msg": problem}))  # pylint: disable=ansible-bad-function
        sys.exit(1)  # pylint: disable=ansible-bad-function
