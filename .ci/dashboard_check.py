#!/usr/bin/env python3
"""Checks a Grafana dashboard against a running Prometheus (run by .ci/dashboard.sh).

Every query of every panel (rows and collapsed rows included) is sent to Prometheus's HTTP
API as a range query over the window given, after substituting Grafana's variables
($__rate_interval, $__interval, $__range, and the dashboard's own, e.g. $job). A query has
data when at least one of its series has a sample that is a number (NaN, what Grafana draws
as nothing, does not count). Each templating variable of the form label_values(metric,
label) must list at least one value. Any panel with a query without data, a query
Prometheus refuses, or a variable the checker cannot resolve fails the run, named by its
title. Then every alerting and recording rule Prometheus loaded must be healthy (evaluated
without error), and the rule groups must be the ones in the rule files given.

Standard library only; the exit code is 0 when everything holds, 1 otherwise.
"""

import argparse
import json
import math
import re
import sys
import urllib.error
import urllib.parse
import urllib.request

# Grafana's built-in variables, and how a variable may be written in a query:
# $name, ${name}, ${name:format}, [[name]].
VARIABLE = re.compile(r"\$\{(\w+)(?::[\w]+)?\}|\$(\w+)|\[\[(\w+)\]\]")


def get(base, path, params):
    url = base.rstrip("/") + path + "?" + urllib.parse.urlencode(params, doseq=True)
    try:
        with urllib.request.urlopen(url, timeout=30) as answer:
            body = json.load(answer)
    except urllib.error.HTTPError as error:
        # Prometheus answers a bad query with 400 and a JSON error.
        try:
            body = json.load(error)
        except ValueError:
            return None, f"HTTP {error.code}"
    if body.get("status") != "success":
        return None, f"{body.get('errorType', 'error')}: {body.get('error', body)}"
    return body["data"], None


def panels(items):
    for panel in items:
        yield panel
        yield from panels(panel.get("panels", []))


def substitute(expr, values):
    missing = []

    def replace(match):
        name = match.group(1) or match.group(2) or match.group(3)
        if name in values:
            return values[name]
        missing.append(name)
        return match.group(0)

    return VARIABLE.sub(replace, expr), missing


def has_number(result):
    for series in result:
        for _, value in series.get("values", []):
            if not math.isnan(float(value)):
                return True
    return False


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prometheus", required=True, help="http://127.0.0.1:PORT")
    parser.add_argument("--dashboard", required=True)
    parser.add_argument("--start", required=True, type=float, help="unix seconds")
    parser.add_argument("--end", required=True, type=float, help="unix seconds")
    parser.add_argument("--step", default="2s")
    parser.add_argument("--rate-interval", default="15s",
                        help="what $__rate_interval stands for (Grafana: at least 4 scrapes)")
    parser.add_argument("--var", action="append", default=[], metavar="NAME=VALUE",
                        help="a dashboard variable's value (a regex for multi-value ones)")
    parser.add_argument("--rules", action="append", default=[], metavar="FILE",
                        help="a rule file Prometheus loaded: its groups must be there, healthy")
    args = parser.parse_args()

    with open(args.dashboard, encoding="utf-8") as f:
        dashboard = json.load(f)
    window = max(1, int(args.end - args.start))
    values = {
        "__rate_interval": args.rate_interval,
        "__interval": args.step,
        "__interval_ms": str(int(float(args.step.rstrip("s")) * 1000)),
        "__range": f"{window}s",
        "__range_s": str(window),
        "__range_ms": str(window * 1000),
    }
    for item in args.var:
        name, _, value = item.partition("=")
        values[name] = value

    failures = []

    for variable in dashboard.get("templating", {}).get("list", []):
        query = variable.get("query")
        if isinstance(query, dict):
            query = query.get("query")
        if variable.get("type") != "query" or not query:
            continue
        found = re.fullmatch(r"\s*label_values\(\s*(.+?)\s*,\s*(\w+)\s*\)\s*", query)
        if not found:
            failures.append(f"variable {variable['name']}: cannot check query {query!r}")
            continue
        data, error = get(args.prometheus, f"/api/v1/label/{found.group(2)}/values",
                          {"match[]": found.group(1), "start": args.start, "end": args.end})
        if error or not data:
            failures.append(f"variable {variable['name']}: {query} lists nothing ({error or 'empty'})")
        else:
            print(f"ok   variable {variable['name']}: {', '.join(data)}")

    count = 0
    for panel in panels(dashboard.get("panels", [])):
        title = panel.get("title", "(untitled)")
        for target in panel.get("targets", []):
            raw = target.get("expr")
            if not raw:
                continue
            count += 1
            expr, missing = substitute(raw, values)
            if missing:
                failures.append(f"panel {title!r}: unknown variable(s) {', '.join(missing)} in {raw}")
                continue
            data, error = get(args.prometheus, "/api/v1/query_range",
                              {"query": expr, "start": args.start, "end": args.end,
                               "step": args.step})
            if error:
                failures.append(f"panel {title!r}: Prometheus refused {expr}: {error}")
            elif not has_number(data["result"]):
                failures.append(f"panel {title!r}: no data for {expr}")
            else:
                print(f"ok   {title}: {len(data['result'])} series  {expr}")
    if count == 0:
        failures.append("the dashboard has no queries")

    if args.rules:
        data, error = get(args.prometheus, "/api/v1/rules", {})
        if error:
            failures.append(f"rules: {error}")
        else:
            loaded = {group["name"]: group for group in data["groups"]}
            wanted = []
            for path in args.rules:
                with open(path, encoding="utf-8") as f:
                    wanted += re.findall(r"^\s*-\s*name:\s*(\S+)\s*$", f.read(), re.M)
            for name in wanted:
                group = loaded.get(name)
                if group is None:
                    failures.append(f"rule group {name}: not loaded")
                    continue
                for rule in group["rules"]:
                    if rule.get("health") != "ok":
                        failures.append(f"rule {rule['name']} ({name}): {rule.get('health')}"
                                        f" {rule.get('lastError', '')}")
                print(f"ok   rule group {name}: {len(group['rules'])} rules healthy"
                      if all(r.get("health") == "ok" for r in group["rules"])
                      else f"BAD  rule group {name}")
            if not wanted:
                failures.append("no rule groups found in " + ", ".join(args.rules))

    if failures:
        print(f"\n{len(failures)} problem(s):", file=sys.stderr)
        for failure in failures:
            print(f"  {failure}", file=sys.stderr)
        return 1
    print(f"\nevery one of the {count} panel queries returned data")
    return 0


if __name__ == "__main__":
    sys.exit(main())
