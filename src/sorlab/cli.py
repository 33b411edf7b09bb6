"""The `sorlab` command. Each subcommand lives in its own module, imported only when used.

A subcommand module defines `add_arguments(parser)` and `main(args) -> int`.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# (command words) -> (module, one-line help)
COMMANDS: dict[tuple[str, ...], tuple[str, str]] = {
    ("data", "generate"): ("sorlab.data.generate", "regenerate an OGBench dataset offline"),
    ("data", "download"): ("sorlab.data.download", "download official OGBench datasets"),
    ("train",): ("sorlab.train", "train one (agent, dataset, task, seed) run"),
    ("evaluate",): ("sorlab.evaluate", "evaluate a checkpoint over an (M_inf, N) grid"),
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
    for words, (module_name, help_text) in sorted(COMMANDS.items(), key=lambda kv: -len(kv[0])):
        if tuple(argv[: len(words)]) == words:
            module = importlib.import_module(module_name)
            parser = argparse.ArgumentParser(
                prog="sorlab " + " ".join(words), description=help_text
            )
            module.add_arguments(parser)
            args = parser.parse_args(argv[len(words) :])
            return int(module.main(args) or 0)
    if argv and argv[0] not in ("-h", "--help"):
        print(f"sorlab: unknown command {' '.join(argv[:2])!r}\n", file=sys.stderr)
        print(_usage(), file=sys.stderr)
        return 2
    print(_usage())
    return 0


if __name__ == "__main__":
    sys.exit(main())
