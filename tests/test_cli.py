import subprocess
import sys

from sorlab.agents import get_agent
from sorlab.cli import main


def test_usage_lists_commands(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "data generate" in out and "train" in out


def test_unknown_command_is_named(capsys):
    assert main(["frobnicate"]) == 2
    assert "frobnicate" in capsys.readouterr().err


def test_console_script_runs():
    result = subprocess.run([sys.executable, "-m", "sorlab.cli"], capture_output=True, text=True)
    assert result.returncode == 0 and "usage: sorlab" in result.stdout


def test_unknown_agent_names_known_ones():
    try:
        get_agent("nope")
    except ValueError as err:
        assert "nope" in str(err) and "sorl" in str(err)
    else:
        raise AssertionError("expected ValueError")
