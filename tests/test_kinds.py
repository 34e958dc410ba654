"""transport/kinds.py: the server kinds, importable without the profiles."""

from __future__ import annotations

import subprocess
import sys

import pytest

from nbchat.transport.kinds import KINDS
from nbchat.transport.profiles import profile_for


def test_every_kind_has_a_profile_and_no_other_kind_has_one():
    for kind in KINDS:
        assert profile_for(kind).kind == kind
    assert len(set(KINDS)) == len(KINDS)
    assert "generic" in KINDS and "openai" in KINDS
    with pytest.raises(ValueError, match="Unknown server kind 'tgi'"):
        profile_for("tgi")


def test_the_kinds_import_nothing_of_the_profiles():
    # The settings read the kinds when the extension loads: the profiles (and httpx) wait.
    script = (
        "import sys\n"
        "from nbchat.transport.kinds import KINDS\n"
        "assert 'nbchat.transport.profiles' not in sys.modules\n"
        "assert 'httpx' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
