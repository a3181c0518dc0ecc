"""Tests of benches/support/benchtable.py (the logic of benches/run-all).

python3 -m unittest discover -s benches/support
"""

import json
import sys
import tempfile
import time
import unittest
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchtable as bt  # noqa: E402

SPEC = """
[[table]]
name = "demo"
title = "Demo"

[[table.row]]
case = "check | pipe"
bench = "limit"
levee = "g/levee"
anchor = "g/anchor"
unit = "ns"

[[table.row]]
case = "batch"
bench = "queue"
levee = "b/levee"
anchor = "b/anchor"
per = 10000
unit = "ns/msg"

[[table.row]]
case = "work differs"
bench = "limit"
env = { LEVEE_BENCH_CLOCK = "cpu" }
levee = "g/levee"
anchor = "g/anchor"
unit = "ns"
ratio = false

[[table.row]]
case = "memory"
bench = "limit"
levee_pattern = 'levee ([0-9.]+)'
anchor_pattern = 'governor ([0-9.]+)'
unit = "B"

[[table.row]]
case = "latency"
bench = "queue"
levee_pattern = 'p50 ([0-9.]+)(ns|µs|ms)'
unit = "us"

[[table.row]]
case = "never measured"
bench = "timer"
levee = "t/levee"
anchor = "t/anchor"
unit = "ms"
"""


def inv(bench, runs, env=None, load=(1.0, 2.0, 3.0)):
    return {
        "bench": bench,
        "env": env or {},
        "command": bt.command_line(bench, env or {}, ["--quick"]),
        "runner": "benches/run-all --runs 3",
        "date": "2026-12-05 21:00 UTC",
        "load_before": list(load),
        "load_after": [4.0, 5.0, 6.0],
        "runs": runs,
    }


def results():
    limit_runs = [
        {"estimates": {"g/levee": 10.0, "g/anchor": 20.0}, "output": "levee 67.1 governor 35.7"},
        {"estimates": {"g/levee": 30.0, "g/anchor": 30.0}, "output": "levee 60 governor 40"},
        {"estimates": {"g/levee": 12.0, "g/anchor": 16.0}, "output": "levee 70 governor 35"},
    ]
    queue_runs = [
        {"estimates": {"b/levee": 250_000.0, "b/anchor": 500_000.0}, "output": "p50 15.3µs"},
        {"estimates": {"b/levee": 200_000.0, "b/anchor": 500_000.0}, "output": "p50 1.2ms"},
        {"estimates": {"b/levee": 300_000.0}, "output": "p50 900ns\np50 17.0µs"},
    ]
    cpu_runs = [{"estimates": {"g/levee": 5.0, "g/anchor": 9.0}, "output": ""}]
    return {
        "format": bt.RESULTS_FORMAT,
        "invocations": {
            "limit": inv("limit", limit_runs),
            "queue": inv("queue", queue_runs),
            "limit LEVEE_BENCH_CLOCK=cpu": inv("limit", cpu_runs, {"LEVEE_BENCH_CLOCK": "cpu"}),
        },
    }


class SpecTest(unittest.TestCase):
    def test_parses_rows(self):
        (table,) = bt.parse_spec(SPEC)
        self.assertEqual(table.name, "demo")
        self.assertEqual(len(table.rows), 6)
        self.assertEqual(table.rows[1].per, 10000.0)
        self.assertEqual(table.rows[2].invocation, "limit LEVEE_BENCH_CLOCK=cpu")
        self.assertFalse(table.rows[2].ratio)
        self.assertIsNone(table.rows[4].anchor)

    def test_rejects_bad_rows_with_a_typed_error(self):
        bad = [
            SPEC.replace('unit = "ms"', 'unit = "furlongs"'),
            SPEC.replace('levee = "t/levee"\n', ""),
            SPEC.replace("levee_pattern = 'levee ([0-9.]+)'", "levee_pattern = 'levee (['"),
            SPEC.replace('levee = "t/levee"', 'levee = "no-slash"'),
            SPEC.replace("per = 10000", "per = 0"),
            SPEC + '\n[[table]]\nname = "demo"\n',
            "not = [toml",
            "",
        ]
        for text in bad:
            with self.assertRaises(bt.SpecError, msg=text[-60:]):
                bt.parse_spec(text)

    def test_the_repository_spec_parses_and_names_readme_tables(self):
        repo = Path(__file__).resolve().parents[2]
        tables = bt.load_spec(repo / "benches" / "tables.toml")
        readme = (repo / "README.md").read_text(encoding="utf-8")
        for t in tables:
            self.assertIn(f"<!-- bench:{t.name} begin -->", readme)
            self.assertIn(f"<!-- bench:{t.name} end -->", readme)
            self.assertTrue(t.rows, t.name)


class FiguresTest(unittest.TestCase):
    def setUp(self):
        (self.table,) = bt.parse_spec(SPEC)
        self.results = results()

    def figures(self, i):
        row = self.table.rows[i]
        return bt.row_figures(row, self.results["invocations"][row.invocation]["runs"])

    def test_median_and_range_of_each_side(self):
        f = self.figures(0)
        self.assertEqual(f.levee, (12.0, 10.0, 30.0))
        self.assertEqual(f.anchor, (20.0, 16.0, 30.0))
        self.assertEqual(f.runs, 3)

    def test_ratio_is_taken_within_each_run(self):
        # Per run: 0.5, 1.0, 0.75. The ratio of the medians would be 12 / 20 = 0.6.
        self.assertEqual(self.figures(0).ratio, (0.75, 0.5, 1.0))

    def test_per_element_and_a_run_missing_one_side(self):
        f = self.figures(1)
        self.assertEqual(f.levee, (25.0, 20.0, 30.0))
        self.assertEqual(f.anchor, (50.0, 50.0, 50.0))  # run 3 has no anchor figure
        self.assertEqual(f.ratio, (0.45, 0.4, 0.5))  # run 3 is left out of the ratio

    def test_no_ratio_where_the_work_differs(self):
        f = self.figures(2)
        self.assertIsNone(f.ratio)
        self.assertEqual(bt.fmt_ratio(self.table.rows[2], f), "n/a")

    def test_printed_figures_take_the_last_match_and_convert_time_units(self):
        self.assertEqual(self.figures(3).levee, (67.1, 60.0, 70.0))
        self.assertEqual(self.figures(3).anchor, (35.7, 35.0, 40.0))
        # 15.3 µs, 1.2 ms, and the last of 900 ns / 17.0 µs; shown in µs.
        self.assertEqual(self.figures(4).levee, (17.0, 15.3, 1200.0))

    def test_extract_without_a_match(self):
        self.assertIsNone(bt.extract(r"p99 ([0-9.]+)", "p50 3"))

    def test_even_number_of_runs_takes_the_mean_of_the_middle_two(self):
        self.assertEqual(bt.summarize([4.0, 1.0, 3.0, 2.0]), (2.5, 1.0, 4.0))
        self.assertIsNone(bt.summarize([None, None]))


class RenderTest(unittest.TestCase):
    def setUp(self):
        (self.table,) = bt.parse_spec(SPEC)
        self.lines = bt.render_table(self.table, results())

    def test_cells(self):
        self.assertEqual(
            self.lines[2], "| check \\| pipe | 12.00 ns [10.00–30.00] | 20.00 ns [16.00–30.00] "
            "| 0.75 [0.50–1.00] |"
        )
        self.assertIn("25.00 ns/msg [20.00–30.00] (40.00 M msg/s)", self.lines[3])
        # One run: no range.
        self.assertEqual(self.lines[4], "| work differs | 5.00 ns | 9.00 ns | n/a |")
        self.assertIn("| latency | 17.00 µs [15.30–1200.0] | none | n/a |", self.lines)
        self.assertIn("| never measured | — | — | — |", self.lines)

    def test_provenance_names_runs_load_and_commands(self):
        line = self.lines[-1]
        self.assertIn("median of 1/3 runs", line)
        self.assertIn("1.0 2.0 3.0 before / 4.0 5.0 6.0 after", line)
        self.assertIn("`cargo bench --bench limit -- --quick`", line)
        self.assertIn("`LEVEE_BENCH_CLOCK=cpu cargo bench --bench limit -- --quick`", line)
        self.assertNotIn("timer", line)

    def test_number_format(self):
        self.assertEqual(
            [bt.fmt_number(v) for v in (0, 0.8912, 8.554, 24.15, 101.94, 1234.5)],
            ["0", "0.891", "8.55", "24.15", "101.9", "1234.5"],
        )


class ReadmeTest(unittest.TestCase):
    README = (
        "intro\n<!-- bench:demo begin -->\n| old |\n<!-- bench:demo end -->\nafter\n"
        "<!-- bench:other begin -->\n| kept |\n<!-- bench:other end -->\n"
    )

    def test_replaces_only_between_the_markers(self):
        out = bt.replace_block(self.README, "demo", ["| new |"])
        self.assertEqual(out, self.README.replace("| old |", "| new |"))

    def test_missing_or_disordered_markers_are_errors(self):
        with self.assertRaises(bt.ReadmeError):
            bt.replace_block("no markers", "demo", [])
        swapped = "<!-- bench:demo end -->\n<!-- bench:demo begin -->\n"
        with self.assertRaises(bt.ReadmeError):
            bt.replace_block(swapped, "demo", [])

    def test_tables_without_figures_keep_their_text_unless_forced(self):
        (table,) = bt.parse_spec(SPEC)
        empty = {"format": bt.RESULTS_FORMAT, "invocations": {}}
        self.assertEqual(bt.render_readme(self.README, [table], empty, set()), self.README)
        forced = bt.render_readme(self.README, [table], empty, {"demo"})
        self.assertIn("| never measured | — | — | — |", forced)
        self.assertIn("No figures yet", forced)
        self.assertIn("| kept |", forced)

    def test_render_is_idempotent(self):
        (table,) = bt.parse_spec(SPEC)
        once = bt.render_readme(self.README, [table], results(), set())
        self.assertEqual(bt.render_readme(once, [table], results(), set()), once)


class ResultsTest(unittest.TestCase):
    def test_merge_later_file_wins(self):
        a = {"format": 1, "invocations": {"x": {"runs": [1]}, "y": {"runs": [2]}}}
        b = {"format": 1, "invocations": {"x": {"runs": [3]}}}
        merged = bt.merge_results([a, b])
        self.assertEqual(merged["invocations"], {"x": {"runs": [3]}, "y": {"runs": [2]}})
        with self.assertRaises(ValueError):
            bt.merge_results([{"format": 99}])

    def test_select_by_table_or_bench(self):
        tables = bt.parse_spec(SPEC + '\n[[table]]\nname = "t2"\n[[table.row]]\ncase = "c"\n'
                               'bench = "clock"\nlevee = "c/l"\nunit = "ns"\n')
        self.assertEqual([t.name for t in bt.select(tables, ["clock"])], ["t2"])
        self.assertEqual([t.name for t in bt.select(tables, ["demo"])], ["demo"])
        self.assertEqual(set(bt.wanted_invocations(tables, ["queue"])), {"queue"})
        with self.assertRaises(bt.SpecError):
            bt.select(tables, ["nope"])

    def test_criterion_estimates_reads_new_results_only(self):
        with tempfile.TemporaryDirectory() as d:
            root = Path(d)
            for name, est in [("g_a/levee", {"mean": {"point_estimate": 7.5}, "slope": None}),
                              ("g_a/anchor", {"mean": {"point_estimate": 9.0},
                                              "slope": {"point_estimate": 8.0}})]:
                new = root / name / "new"
                new.mkdir(parents=True)
                full_id = name.replace("_", "/", 1)
                (new / "benchmark.json").write_text(json.dumps({"full_id": full_id}))
                (new / "estimates.json").write_text(json.dumps(est))
            got = bt.criterion_estimates(root, since=0)
            self.assertEqual(got, {"g/a/levee": 7.5, "g/a/anchor": 8.0})
            self.assertEqual(bt.criterion_estimates(root, since=time.time() + 60), {})

    def test_missing_ids_name_spec_typos(self):
        (table,) = bt.parse_spec(SPEC.replace('anchor = "b/anchor"', 'anchor = "b/typo"'))
        missing = bt.missing_ids([table], results())
        self.assertEqual(missing, ["demo: b/typo (queue)"])


if __name__ == "__main__":
    unittest.main()
