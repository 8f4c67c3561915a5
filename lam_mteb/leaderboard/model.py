"""The leaderboard's data: rows of scores, each with where it came from."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Cell:
    """One score of one row on one task (fraction in [0, 1], mteb's main_score scale)."""

    value: float
    metric: str | None = None
    split: str | None = None
    recreated: bool = False  # computed on a local re-creation of the task's data
    recreation_note: str | None = None
    file: str | None = None
    #: set when only some of the task's eval splits were scored (the row then lacks the task)
    partial_note: str | None = None
    #: other numeric metrics of the same split(s), e.g. {"cosine_mean": 0.53} (spec.detail_metrics)
    details: dict[str, float] = field(default_factory=dict)


@dataclass
class Summary:
    """An aggregate a source states without per-task numbers (e.g. a claimed benchmark average)."""

    value: float
    note: str
    reported: str | None = None


@dataclass
class Row:
    model: str  # display name
    kind: str  # spec.KIND_*
    source: str  # display text of the provenance
    model_id: str | None = None
    revision: str | None = None
    scores: dict[str, Cell] = field(default_factory=dict)
    summaries: dict[str, Summary] = field(default_factory=dict)
    benchmarks: tuple[str, ...] = ()  # benchmarks a score-less row belongs to
    n_parameters: int | None = None
    embed_dim: int | None = None
    max_tokens: int | float | None = None  # math.inf: no limit (a streaming encoder)
    note: str | None = None
    broken: str | None = None  # why the upstream run is documented as broken (never ranked)
    path: str | None = None  # for our rows: the result folder
    source_short: str | None = None  # for the chart's labels

    @property
    def key(self) -> tuple:
        return (self.model, self.source, self.revision, self.path)
