"""Benchmarks: each module runs with ``python -m benchmarks.<name>`` and prints its figures.

``./dev bench`` runs the modules listed in ``ALL`` in this order (one per line, as below).
Figures, machine and date are recorded in docs/benchmarks.md.
"""

ALL = (
    "ingest_bench",
    "ingest_kill_compare",
    "topology_memory",
    "sim_bench",
    "detect_inference",
    "detect_e2e_bench",
    "etr_bench",
    "etr_accuracy",
    "notify_enqueue",
    "notify_dispatch",
    "platform_bench",
    "api_bench",
)
