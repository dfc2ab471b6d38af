"""The `otel-claude` command: a thin dispatcher to each subcommand's own module.

Subcommands import lazily so `otel-claude tune` does not load the simulator and vice versa.
"""

from __future__ import annotations

import importlib
import sys

# subcommand -> (module with `main(argv) -> int`, one-line help)
_COMMANDS: dict[str, tuple[str, str]] = {
    "sim": ("claude_sim.cli", "run the local Anthropic API simulator"),
    "workload": ("claude_sim.workload", "drive a scenario's workload through the instrumented SDK"),
    "tune": ("tuner.cli", "turn exported spans into a policy file and a report"),
    "demo": ("otel_claude_demo.loop", "run the closed loop end to end on the simulator"),
}


def _usage() -> str:
    lines = ["usage: otel-claude COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<10} {help_}" for name, (_, help_) in _COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(_usage())
        return 0
    entry = _COMMANDS.get(args[0])
    if entry is None:
        print(f"otel-claude: unknown command {args[0]!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(entry[0])
    return int(module.main(args[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
