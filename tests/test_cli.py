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


def test_training_and_evaluation_import_each_other_only_in_the_training_cli():
    """ARCHITECTURE.md: training/ and evaluation/ never import each other, except
    training/cli.py, which wires the evaluation into the training loop."""
    import ast
    from pathlib import Path

    import sorlab

    root = Path(sorlab.__file__).parent

    def imports(path: Path) -> set[str]:
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
            elif isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
        return names

    for package, other in (("training", "sorlab.evaluation"), ("evaluation", "sorlab.training")):
        for path in sorted((root / package).glob("*.py")):
            if (package, path.name) == ("training", "cli.py"):
                continue
            bad = [name for name in imports(path) if name.startswith(other)]
            assert not bad, f"{path} imports {bad}"
    for neutral in ("checkpoints.py", "data/transitions.py"):
        bad = [
            n
            for n in imports(root / neutral)
            if n.startswith(("sorlab.training", "sorlab.evaluation"))
        ]
        assert not bad, f"{neutral} imports {bad}"
