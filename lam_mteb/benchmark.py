"""The benchmark record: a group of tasks the ``register_benchmarks`` hook registers and the
leaderboard shows as one table (a plain record, beside the registry that holds it)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields


@dataclass(frozen=True)
class Benchmark:
    """A group of tasks shown as one table, registered by the plugin that owns the tasks
    (``register_benchmarks`` hook).

    ``tasks`` are averaged and Borda-ranked over the rows that have all of them; ``extra_tasks``
    are shown but neither averaged nor ranked.  Tasks found in the results whose name starts with
    ``prefix`` join ``tasks`` when ``prefix_ranked`` else ``extra_tasks``.  Tables appear by
    ``position``, then registration order.
    """

    key: str
    title: str
    tasks: tuple[str, ...]
    plugin: str = ""
    extra_tasks: tuple[str, ...] = ()
    prefix: str | None = None
    prefix_ranked: bool = False
    position: int = 100
    description: str = ""
    abbreviations: dict[str, str] = field(default_factory=dict)
    #: more metrics shown beside the main score in markdown/HTML: (task, metric key, column label);
    #: read from the same split(s) of the result file as the main score (not averaged, not ranked)
    detail_metrics: tuple[tuple[str, ...], ...] = ()
    #: task -> how its local re-creation was made and checked against the published set (the
    #: leaderboard's first sentence for the tasks whose results say they ran on re-created data)
    recreations: dict[str, str] = field(default_factory=dict)


#: the keyword options of ``register_benchmarks``' ``register(key, title, tasks, **options)``:
#: every field of the record but the positional ones and the plugin (set by the registry)
BENCHMARK_OPTIONS = frozenset(
    f.name for f in fields(Benchmark) if f.name not in ("key", "title", "tasks", "plugin")
)
