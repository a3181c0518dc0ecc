"""The README's performance tables from `benches/tables.toml` and criterion's results.

`benches/run-all` is the command; this module holds its logic so that
`benches/support/test_benchtable.py` can test it (python3 standard library only).

Vocabulary: a *row* is one README row (a levee side and an anchor side); an *invocation*
is one `cargo bench --bench <bench>` with one environment; a *run* is one execution of an
invocation. A row's figure is the median over runs, shown with the runs' min-max range;
its ratio is levee / anchor computed within each run, then summarized the same way.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import statistics
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

RESULTS_FORMAT = 1

#: How each `unit` of the spec is shown: the divisor from the stored value, and the label.
#: Times are stored in nanoseconds; bytes and allocation counts as they were printed.
UNITS = {
    "ns": (1.0, "ns"),
    "us": (1e3, "µs"),
    "ms": (1e6, "ms"),
    "ns/msg": (1.0, "ns/msg"),
    "B": (1.0, "B"),
    "allocs": (1.0, "allocations"),
}

#: Time units a printed figure may carry (`levee_pattern` group 2), in nanoseconds.
TIME_UNITS = {"ns": 1.0, "us": 1e3, "µs": 1e3, "ms": 1e6, "s": 1e9}

NO_FIGURE = "—"


class SpecError(Exception):
    """The spec file is malformed (a missing field, an unknown unit, a bad regex)."""


class ReadmeError(Exception):
    """README.md lacks a table's markers, or has them out of order."""


class BenchError(Exception):
    """A bench run failed."""


@dataclass(frozen=True)
class Side:
    """One side of a row: a criterion id, or a regex over the run's printed output."""

    criterion_id: str | None = None
    pattern: str | None = None

    def figure(self, run: dict) -> float | None:
        """This side's figure in one run (ns for times), or None if the run lacks it."""
        if self.criterion_id is not None:
            return run.get("estimates", {}).get(self.criterion_id)
        return extract(self.pattern, run.get("output", ""))


@dataclass(frozen=True)
class Row:
    case: str
    bench: str
    env: tuple[tuple[str, str], ...]
    levee: Side
    anchor: Side | None
    unit: str
    per: float = 1.0
    ratio: bool = True

    @property
    def invocation(self) -> str:
        return invocation_key(self.bench, dict(self.env))


@dataclass
class Table:
    name: str
    title: str
    rows: list[Row] = field(default_factory=list)

    @property
    def benches(self) -> set[str]:
        return {r.bench for r in self.rows}


def invocation_key(bench: str, env: dict[str, str]) -> str:
    """`limit`, or `limit LEVEE_BENCH_CLOCK=cpu`: one key per bench and environment."""
    return " ".join([bench] + [f"{k}={v}" for k, v in sorted(env.items())])


def command_line(bench: str, env: dict[str, str], bench_args: list[str]) -> str:
    """The shell command that an invocation runs, as the README shows it."""
    words = [f"{k}={v}" for k, v in sorted(env.items())]
    words += ["cargo", "bench", "--bench", bench]
    if bench_args:
        words += ["--", *bench_args]
    return " ".join(words)


def _side(raw: dict, name: str, where: str) -> Side | None:
    criterion_id = raw.get(name)
    pattern = raw.get(f"{name}_pattern")
    if criterion_id is not None and pattern is not None:
        raise SpecError(f"{where}: `{name}` and `{name}_pattern` are exclusive")
    if criterion_id is None and pattern is None:
        return None
    if pattern is not None:
        try:
            re.compile(pattern)
        except re.error as e:
            raise SpecError(f"{where}: `{name}_pattern` is not a regex: {e}") from e
        return Side(pattern=pattern)
    if not isinstance(criterion_id, str) or criterion_id.count("/") < 1:
        raise SpecError(f"{where}: `{name}` must be a criterion id `group/function`")
    return Side(criterion_id=criterion_id)


def parse_spec(text: str) -> list[Table]:
    """The tables of a spec file's text, checked."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SpecError(f"not TOML: {e}") from e
    tables = []
    seen = set()
    for t in data.get("table", []):
        name = t.get("name")
        if not name or not re.fullmatch(r"[a-z0-9_-]+", name):
            raise SpecError(f"table name {name!r}: lowercase letters, digits, - and _")
        if name in seen:
            raise SpecError(f"table {name!r} twice")
        seen.add(name)
        table = Table(name=name, title=t.get("title", name))
        for i, r in enumerate(t.get("row", []), 1):
            where = f"table {name!r} row {i}"
            for key in ("case", "bench", "unit"):
                if not isinstance(r.get(key), str) or not r[key]:
                    raise SpecError(f"{where}: `{key}` missing")
            if r["unit"] not in UNITS:
                raise SpecError(f"{where}: unit {r['unit']!r} not one of {sorted(UNITS)}")
            levee = _side(r, "levee", where)
            if levee is None:
                raise SpecError(f"{where}: no levee side (`levee` or `levee_pattern`)")
            env = r.get("env", {})
            if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
                raise SpecError(f"{where}: `env` must be a table of strings")
            per = r.get("per", 1)
            if not isinstance(per, (int, float)) or per <= 0:
                raise SpecError(f"{where}: `per` must be a positive number")
            table.rows.append(
                Row(
                    case=r["case"],
                    bench=r["bench"],
                    env=tuple(sorted(env.items())),
                    levee=levee,
                    anchor=_side(r, "anchor", where),
                    unit=r["unit"],
                    per=float(per),
                    ratio=bool(r.get("ratio", True)),
                )
            )
        tables.append(table)
    if not tables:
        raise SpecError("no [[table]] in the spec")
    return tables


def load_spec(path: Path) -> list[Table]:
    return parse_spec(path.read_text(encoding="utf-8"))


def extract(pattern: str, output: str) -> float | None:
    """The last match of `pattern` in `output`: group 1 a number, group 2 (if any) a time
    unit, converted to nanoseconds."""
    value = None
    for m in re.finditer(pattern, output, re.MULTILINE):
        try:
            value = float(m.group(1))
        except (IndexError, ValueError):
            continue
        if m.re.groups >= 2 and m.group(2):
            value *= TIME_UNITS.get(m.group(2), float("nan"))
    return value


def summarize(values: list[float]) -> tuple[float, float, float] | None:
    """(median, min, max) of the figures of the runs, or None without any."""
    values = [v for v in values if v is not None]
    if not values:
        return None
    return statistics.median(values), min(values), max(values)


@dataclass(frozen=True)
class RowFigures:
    """A row's summarized figures, in the row's display unit (per element)."""

    levee: tuple[float, float, float] | None
    anchor: tuple[float, float, float] | None
    ratio: tuple[float, float, float] | None
    runs: int


def row_figures(row: Row, runs: list[dict]) -> RowFigures:
    """Summarizes one row over the runs of its invocation. The ratio is taken per run (both
    sides from the same run), so a run the whole machine slowed down moves both sides."""
    scale = UNITS[row.unit][0] * row.per

    def side(s: Side | None) -> list[float | None]:
        if s is None:
            return [None] * len(runs)
        # Per-element figures only divide criterion's per-iteration times, not printed ones.
        div = scale if s.criterion_id is not None else UNITS[row.unit][0]
        return [None if (v := s.figure(run)) is None else v / div for run in runs]

    levee, anchor = side(row.levee), side(row.anchor)
    ratios = []
    if row.ratio and row.anchor is not None:
        ratios = [a / b for a, b in zip(levee, anchor) if a is not None and b]
    counted = sum(1 for v in levee if v is not None)
    return RowFigures(summarize(levee), summarize(anchor), summarize(ratios), counted)


def fmt_number(v: float) -> str:
    """Three or four significant digits, as the README has always shown them."""
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 100:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def fmt_range(lo: float, hi: float, fmt=fmt_number) -> str:
    return f"[{fmt(lo)}–{fmt(hi)}]"


def fmt_ratio_number(v: float) -> str:
    """Ratios with two decimals (one from 10 up): 0.43, 1.01, 83.1."""
    return f"{v:.1f}" if abs(v) >= 10 else f"{v:.2f}"


def fmt_cell(summary: tuple[float, float, float] | None, unit: str, runs: int) -> str:
    """`8.55 ns [8.40–8.70]`; for ns/msg also the rate of the median; "—" without figures."""
    if summary is None:
        return NO_FIGURE
    median, lo, hi = summary
    text = f"{fmt_number(median)} {UNITS[unit][1]}"
    if runs > 1:
        text += f" {fmt_range(lo, hi)}"
    if unit == "ns/msg" and median > 0:
        text += f" ({fmt_number(1e3 / median)} M msg/s)"
    return text


def fmt_ratio(row: Row, figures: RowFigures) -> str:
    if not row.ratio or row.anchor is None:
        return "n/a"
    if figures.ratio is None:
        return NO_FIGURE
    median, lo, hi = figures.ratio
    text = fmt_ratio_number(median)
    if figures.runs > 1:
        text += f" {fmt_range(lo, hi, fmt_ratio_number)}"
    return text


def md_cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_table(table: Table, results: dict) -> list[str]:
    """The Markdown lines of one table and the line that says how it was made."""
    invocations = results.get("invocations", {})
    lines = ["| case | levee | anchor | ratio (levee / anchor) |", "|---|---|---|---|"]
    used = []
    for row in table.rows:
        inv = invocations.get(row.invocation)
        runs = inv["runs"] if inv else []
        figures = row_figures(row, runs)
        if figures.levee is not None and row.invocation not in used:
            used.append(row.invocation)
        anchor = fmt_cell(figures.anchor, row.unit, figures.runs)
        if row.anchor is None:
            anchor = "none"
        cells = [row.case, fmt_cell(figures.levee, row.unit, figures.runs), anchor]
        cells.append(fmt_ratio(row, figures))
        lines.append("| " + " | ".join(md_cell(c) for c in cells) + " |")
    lines.append("")
    lines.append(provenance(table, [invocations[k] for k in used]))
    return lines


def provenance(table: Table, invocations: list[dict]) -> str:
    """The line under a table: when, how many runs, the load, the commands."""
    if not invocations:
        return (
            f"No figures yet: `benches/run-all --only {table.name}` measures this table "
            "(rows and bench ids: `benches/tables.toml`)."
        )
    dates = sorted({inv["date"] for inv in invocations})
    runs = sorted({len(inv["runs"]) for inv in invocations})
    runners = sorted({inv["runner"] for inv in invocations})
    loads = ", ".join(
        f"{fmt_load(inv['load_before'])} before / {fmt_load(inv['load_after'])} after"
        for inv in invocations
    )
    commands = ", ".join(f"`{inv['command']}`" for inv in invocations)
    return (
        f"Generated by `{'`, `'.join(runners)}` on {', '.join(dates)}: each figure is the "
        f"median of {'/'.join(map(str, runs))} runs with the min–max over the runs in "
        f"brackets; the ratio is levee / anchor within each run, summarized the same way. "
        f"Load average (1, 5, 15 min): {loads}. Runs of {commands}."
    )


def fmt_load(load: list[float]) -> str:
    return " ".join(f"{x:.1f}" for x in load)


def replace_block(readme: str, name: str, lines: list[str]) -> str:
    """`readme` with the text between table `name`'s markers replaced by `lines`."""
    begin, end = f"<!-- bench:{name} begin -->", f"<!-- bench:{name} end -->"
    i, j = readme.find(begin), readme.find(end)
    if i < 0 or j < 0:
        raise ReadmeError(f"README has no `{begin}` ... `{end}` markers")
    if j < i or readme.count(begin) != 1 or readme.count(end) != 1:
        raise ReadmeError(f"README's markers of table {name!r} are out of order or repeated")
    body = "\n".join(lines)
    return readme[: i + len(begin)] + "\n" + body + "\n" + readme[j:]


def has_figures(table: Table, results: dict) -> bool:
    invocations = results.get("invocations", {})
    for row in table.rows:
        inv = invocations.get(row.invocation)
        if inv and row_figures(row, inv["runs"]).levee is not None:
            return True
    return False


def render_readme(readme: str, tables: list[Table], results: dict, force: set[str]) -> str:
    """Rewrites each table that has figures in `results` (or is named in `force`, which
    renders "—" where a row has none); other tables keep what the README has."""
    for table in tables:
        if table.name in force or has_figures(table, results):
            readme = replace_block(readme, table.name, render_table(table, results))
    return readme


def merge_results(parts: list[dict]) -> dict:
    """Results files merged; a later file's invocation replaces an earlier one's."""
    merged: dict = {"format": RESULTS_FORMAT, "invocations": {}}
    for part in parts:
        if part.get("format") != RESULTS_FORMAT:
            raise ValueError(f"results format {part.get('format')!r}, expected {RESULTS_FORMAT}")
        merged["invocations"].update(part.get("invocations", {}))
    return merged


def select(tables: list[Table], only: list[str]) -> list[Table]:
    """The tables `--only` names, by table name or by bench name; all without `--only`."""
    if not only:
        return tables
    known = {t.name for t in tables} | {b for t in tables for b in t.benches}
    unknown = [o for o in only if o not in known]
    if unknown:
        raise SpecError(f"--only {', '.join(unknown)}: not a table or bench of the spec")
    return [t for t in tables if t.name in only or t.benches & set(only)]


def wanted_invocations(tables: list[Table], only: list[str]) -> dict[str, tuple[str, dict]]:
    """Invocation key -> (bench, env) for the rows of the selected tables (restricted to the
    benches `--only` names, when it names benches)."""
    benches = {o for o in only if any(o in t.benches for t in tables)}
    out = {}
    for table in select(tables, only):
        for row in table.rows:
            if benches and row.bench not in benches and table.name not in only:
                continue
            out.setdefault(row.invocation, (row.bench, dict(row.env)))
    return out


def criterion_estimates(criterion_dir: Path, since: float) -> dict[str, float]:
    """full id -> ns per iteration, for every benchmark criterion wrote since `since`: its
    typical estimate (the slope where it fits one, else the mean), as `cargo bench` prints."""
    out = {}
    for bench_json in criterion_dir.glob("**/new/benchmark.json"):
        estimates = bench_json.with_name("estimates.json")
        try:
            if estimates.stat().st_mtime < since:
                continue
            meta = json.loads(bench_json.read_text())
            est = json.loads(estimates.read_text())
        except (OSError, ValueError):
            continue
        typical = est.get("slope") or est.get("mean")
        if typical and "full_id" in meta:
            out[meta["full_id"]] = float(typical["point_estimate"])
    return out


def target_dir(repo: Path) -> Path:
    if "CARGO_TARGET_DIR" in os.environ:
        return Path(os.environ["CARGO_TARGET_DIR"])
    meta = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--no-deps"],
        cwd=repo, check=True, capture_output=True, text=True,
    )
    return Path(json.loads(meta.stdout)["target_directory"])


def run_once(repo: Path, bench: str, env: dict, bench_args: list[str], criterion_dir: Path) -> dict:
    """One run of one invocation: its estimates and its whole output (echoed to stderr)."""
    started = time.time() - 1.0  # mtime granularity
    cmd = ["cargo", "bench", "--bench", bench, "--", *bench_args]
    proc = subprocess.Popen(
        cmd, cwd=repo, env={**os.environ, **env}, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, errors="replace",
    )
    output = []
    assert proc.stdout is not None
    for line in proc.stdout:
        output.append(line)
        sys.stderr.write(line)
    if proc.wait() != 0:
        raise BenchError(f"`{command_line(bench, env, bench_args)}` exited with {proc.returncode}")
    return {
        "started": datetime.datetime.fromtimestamp(started + 1.0, datetime.UTC).isoformat(
            timespec="seconds"
        ),
        "estimates": criterion_estimates(criterion_dir, started),
        "output": "".join(output),
    }


def missing_ids(tables: list[Table], results: dict) -> list[str]:
    """Spec ids and patterns that no run of their invocation produced: a typo in the spec,
    or a bench that has not got that case."""
    out = []
    for table in tables:
        for row in table.rows:
            inv = results["invocations"].get(row.invocation)
            if not inv:
                continue
            for side in (row.levee, row.anchor):
                if side is not None and all(side.figure(run) is None for run in inv["runs"]):
                    what = side.criterion_id or f"pattern {side.pattern!r}"
                    out.append(f"{table.name}: {what} ({row.invocation})")
    return sorted(set(out))
