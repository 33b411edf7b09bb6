"""The `sorlab` command. Each subcommand lives in its own module, imported only when used.

A subcommand module defines `add_arguments(parser)` and `main(args) -> int`. A SorlabError it
raises is printed here on one line (`sorlab COMMAND: error: ...`) and exits with the error's
`exit_code`: 2 for a wrong command line or config (as argparse's own usage errors), 1 for
inputs or outputs that cannot be used.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from sorlab.errors import SorlabError
from sorlab.quiet import quiet_third_party_warnings

# (command words) -> (module, one-line help)
COMMANDS: dict[tuple[str, ...], tuple[str, str]] = {
    ("data", "generate"): ("sorlab.data.generate", "regenerate an OGBench dataset offline"),
    ("data", "download"): ("sorlab.data.download", "download official OGBench datasets"),
    ("train",): ("sorlab.training.cli", "train one (agent, dataset, task, seed) run"),
    ("evaluate",): ("sorlab.evaluation.cli", "evaluate a checkpoint over an (M_inf, N) grid"),
    ("bench", "update"): ("sorlab.bench", "measure an agent's update throughput"),
    ("report",): ("sorlab.report.cli", "aggregate results/ into tables and figures"),
}


def _usage() -> str:
    lines = ["usage: sorlab COMMAND [options]", "", "commands:"]
    for words, (_, help_text) in COMMANDS.items():
        lines.append(f"  {' '.join(words):<16} {help_text}")
    lines.append("")
    lines.append("Run `sorlab COMMAND --help` for a command's options.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    quiet_third_party_warnings()
    for words, (module_name, help_text) in sorted(COMMANDS.items(), key=lambda kv: -len(kv[0])):
        if tuple(argv[: len(words)]) == words:
            module = importlib.import_module(module_name)
            parser = argparse.ArgumentParser(
                prog="sorlab " + " ".join(words), description=help_text
            )
            module.add_arguments(parser)
            args = parser.parse_args(argv[len(words) :])
            try:
                return int(module.main(args) or 0)
            except SorlabError as err:
                print(f"{parser.prog}: error: {err}", file=sys.stderr)
                return err.exit_code
    if argv and argv[0] not in ("-h", "--help"):
        print(f"sorlab: unknown command {' '.join(argv[:2])!r}\n", file=sys.stderr)
        print(_usage(), file=sys.stderr)
        return 2
    print(_usage())
    return 0


if __name__ == "__main__":
    sys.exit(main())
