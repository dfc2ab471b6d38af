"""The closed-loop demo (`otel-claude demo`): the instrumentor, the tuner and the simulator together.

Apart from `claude_sim` (the simulator package holds the server, the workload driver and the oracle) because it
uses all three parts of the project; `loop.main` is the command.
"""
