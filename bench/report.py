"""From raw samples to the figures of the issue: medians, p90, and every figure as a
ratio to the floor (Docker's bridge driver) and to kuryr-libnetwork, both measured
in the same run; then the markdown table and the PNG chart.
"""
from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

FLOOR = "bridge"
UPSTREAM = "kuryr-libnetwork"


def median(xs: list[float | None]) -> float | None:
    vals = [x for x in xs if x is not None]
    return statistics.median(vals) if vals else None


def p90(xs: list[float | None]) -> float | None:
    """90th percentile, linear interpolation between closest ranks (as numpy's default)."""
    vals = sorted(x for x in xs if x is not None)
    if not vals:
        return None
    if len(vals) == 1:
        return vals[0]
    pos = 0.9 * (len(vals) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(vals) - 1)
    return vals[lo] + (vals[hi] - vals[lo]) * (pos - lo)


def ratio(value: float | None, base: float | None) -> float | None:
    if value is None or base is None or base == 0:
        return None
    return value / base


@dataclass(frozen=True)
class Figure:
    key: str
    label: str
    unit: str
    get: Callable[[dict[str, Any], str], float | None]  # (samples, contender key) -> value
    ratios: bool = True
    digits: int = 2


Getter = Callable[[dict[str, Any], str], float | None]


def _seq(kind: str, stat: Callable[[list[float | None]], float | None]) -> Getter:
    return lambda s, k: stat(s["sequential"][kind].get(k, []))


def _par(field: str) -> Getter:
    return lambda s, k: s["parallel"][k][field] if k in s["parallel"] else None


def _life(field: str) -> Getter:
    """Median over the dedicated lifecycles of run + rm requests."""
    def get(s: dict[str, Any], k: str) -> float | None:
        lives = s["lifecycle"].get(k)
        if lives is None:
            return 0.0 if k == FLOOR else None  # Docker's own driver never calls Neutron
        return median([life["run"][field] + life["rm"][field] for life in lives])
    return get


def _amortized(field: str) -> Getter:
    """Requests of the 30 sequential runs + 30 removes (background work included) per container."""
    def get(s: dict[str, Any], k: str) -> float | None:
        phases = s["sequential"]["phase_counts"].get(k)
        if not phases:
            return 0.0 if k == FLOOR else None
        return sum(p[field] / p["containers"] for p in phases.values())
    return get


def _timing(kind: str, from_start: bool = False) -> Getter:
    """Median time after `docker run` returned, or (from_start) after it was started."""
    def get(s: dict[str, Any], k: str) -> float | None:
        ap = s["active_ping"].get(k)
        if not ap:
            return None
        if not from_start:
            return median(ap[kind])
        runs = ap.get("run", [])
        if len(runs) != len(ap[kind]):
            return None
        return median([None if t is None else r + t for r, t in zip(runs, ap[kind])])
    return get


def _rss(s: dict[str, Any], k: str) -> float | None:
    kib = s["processes"].get(k, {}).get("rss_kib_end")
    return kib / 1024 if kib else None


def _cpu(s: dict[str, Any], k: str) -> float | None:
    return s["processes"].get(k, {}).get("cpu_seconds")


FIGURES: list[Figure] = [
    Figure("run_median", "`docker run -d`, median of {rounds}", "s", _seq("run", median)),
    Figure("run_p90", "`docker run -d`, p90 of {rounds}", "s", _seq("run", p90)),
    Figure("rm_median", "`docker rm -f`, median of {rounds}", "s", _seq("rm", median)),
    Figure("parallel_wall", "{parallel} × `docker run -d` in parallel, wall", "s", _par("wall"), digits=1),
    Figure("parallel_failures", "{parallel} × `docker run -d` in parallel, failures", "", _par("failures"),
           ratios=False, digits=0),
    Figure("parallel_rm_wall", "{parallel} × `docker rm -f` in parallel, wall", "s", _par("rm_wall"), digits=1),
    Figure("neutron_total", "Neutron requests per lifecycle (run + rm), median of {lifecycles}", "",
           _life("total"), digits=0),
    Figure("neutron_reads", "… of which reads (GET)", "", _life("reads"), digits=0),
    Figure("neutron_writes", "… of which writes (POST/PUT/DELETE)", "", _life("writes"), digits=0),
    Figure("neutron_amortized", "Neutron requests per container, amortized over the {rounds} runs + {rounds} rm",
           "", _amortized("total"), digits=1),
    Figure("neutron_amortized_writes", "… of which writes", "", _amortized("writes"), digits=1),
    Figure("active_median", "`docker run` returned → port ACTIVE in Neutron, median of {ping_rounds}", "s",
           _timing("active")),
    Figure("ping_median", "`docker run` returned → first ping to a peer container, median of {ping_rounds}", "s",
           _timing("ping")),
    Figure("active_from_start", "`docker run` started → port ACTIVE, median of {ping_rounds}", "s",
           _timing("active", from_start=True)),
    Figure("ping_from_start", "`docker run` started → first ping to a peer container, median of {ping_rounds}",
           "s", _timing("ping", from_start=True)),
    Figure("rss_mib", "plugin RSS after the runs (incl. children)", "MiB", _rss, digits=0),
    Figure("cpu_seconds", "plugin CPU time over the whole benchmark", "s", _cpu, digits=1),
]


def summarize(samples: dict[str, Any], keys: list[str], settings: dict[str, Any]) -> dict[str, Any]:
    """{figure: {label, unit, by_contender: {contender: {"value", "vs_floor", "vs_kuryr_libnetwork"}}}};
    labels name the sample counts of this run (`settings`: rounds, parallel, ...)."""
    out: dict[str, Any] = {}
    for fig in FIGURES:
        values = {k: fig.get(samples, k) for k in keys}
        row = {}
        for k in keys:
            v = values[k]
            row[k] = {"value": v,
                      "vs_floor": ratio(v, values.get(FLOOR)) if fig.ratios else None,
                      "vs_kuryr_libnetwork": ratio(v, values.get(UPSTREAM)) if fig.ratios else None}
        out[fig.key] = {"label": fig.label.format(**settings), "unit": fig.unit, "by_contender": row}
    return out


# --- markdown -------------------------------------------------------------------------

def _num(v: float | None, digits: int) -> str:
    if v is None:
        return "–"
    return f"{v:.{digits}f}" if digits else f"{v:.0f}"


def _cell(entry: dict[str, Any], digits: int, unit: str) -> str:
    v = entry["value"]
    if v is None:
        return "–"
    text = _num(v, digits) + (f" {unit}" if unit else "")
    rf, ru = entry["vs_floor"], entry["vs_kuryr_libnetwork"]
    if rf is not None or ru is not None:
        text += f" ({_ratio(rf)} / {_ratio(ru)})"
    return text


def _ratio(r: float | None) -> str:
    return "–" if r is None else f"{r:.2f}×"


def markdown(result: dict[str, Any]) -> str:
    keys = [c["key"] for c in result["contenders"]]
    labels = {c["key"]: c["label"] for c in result["contenders"]}
    digits = {f.key: f.digits for f in FIGURES}
    env = result["environment"]
    lines = [
        f"# kuryr-cnm benchmark, {result['date']}",
        "",
        f"Run {result['started']} → {result['finished']} ({result['duration_s']:.0f} s) on `{env['hostname']}`: "
        f"{env['cpus']} CPUs, load average {env['loadavg_start']} at the start, {env['loadavg_end']} at the end. "
        f"dockerd {env['dockerd']} via `/usr/bin/docker` on `/var/run/docker.sock` only (the dockerd 26 and 28 "
        f"engines are not benchmarked); Neutron 29 (ML2/OVN, userspace OVS) at http://127.0.0.1:9696.",
        "",
        f"Versions: kuryr-cnm {env['kuryr_cnm']}; {env['kuryr_libnetwork']}.",
        "",
        "Settings: " + ", ".join(f"{k} {v}" for k, v in result["settings"].items() if k != "out") + ".",
        "",
        "Contenders (interleaved round by round): " + "; ".join(
            f"**{c['label']}** (`{c['network']}`" + (f", plugin `{c['plugin']}`" if c["plugin"] else "") + ")"
            for c in result["contenders"]) + ".",
        "",
        "Each cell: median (or the figure named), then in brackets its ratio to the floor (Docker's bridge "
        "driver on a user-defined network) and to kuryr-libnetwork 18.0.0, both measured in this run. "
        "\"–\": not applicable or not measured.",
        "",
        "| figure | " + " | ".join(labels[k] for k in keys) + " |",
        "|---|" + "---|" * len(keys),
    ]
    for fkey, fig in result["summary"].items():
        cells = [_cell(fig["by_contender"][k], digits[fkey], fig["unit"]) for k in keys]
        lines.append(f"| {fig['label']} | " + " | ".join(cells) + " |")
    lines += ["", "## Notes", ""]
    lines += [f"- {n}" for n in result["notes"]]
    lines += ["", "## Neutron requests of one container lifecycle, by request (first dedicated lifecycle)", ""]
    for k in keys:
        lives = result["samples"]["lifecycle"].get(k)
        if not lives:
            continue
        first = lives[0]
        by = Counter(first["run"]["by_pattern"]) + Counter(first["rm"]["by_pattern"])
        detail = ", ".join(f"{p} ×{n}" for p, n in sorted(by.items()))
        lines.append(f"- **{labels[k]}**: run {first['run']['total']} ({first['run']['writes']} writes), "
                     f"rm {first['rm']['total']} ({first['rm']['writes']} writes): {detail}")
    lines += _parallel_neutron(result, labels)
    problems = _problems(result)
    lines += ["", "## Failures and errors", ""]
    lines += [f"- {p}" for p in problems] if problems else ["- none"]
    lines += ["", f"Raw samples: `{result['files']['json']}`; chart: `{result['files']['png']}` (beside this file).",
              "", f"![chart]({result['files']['png']})", ""]
    return "\n".join(lines)


def _parallel_neutron(result: dict[str, Any], labels: dict[str, str]) -> list[str]:
    """Neutron's side of the parallel starts: is Neutron the bottleneck (its latency under load)?"""
    lines = ["", f"## Neutron during the {result['settings']['parallel']} parallel `docker run -d`", "",
             "Requests the proxy saw from the first start to the last start returning, and Neutron's mean "
             "answer time for them (port creates separately).", ""]
    for k, par in result["samples"]["parallel"].items():
        nt = par.get("neutron_during_runs")
        if not nt:
            continue
        secs, by = nt.get("seconds", {}), nt.get("by_pattern", {})
        mean = sum(secs.values()) / max(1, nt["total"])
        posts = by.get("POST /v2.0/ports", 0)
        post_mean = secs.get("POST /v2.0/ports", 0) / posts if posts else None
        lines.append(f"- **{labels[k]}**: {nt['total']} requests ({nt['writes']} writes), mean {mean:.2f} s"
                     + (f"; {posts} × POST /v2.0/ports, mean {post_mean:.2f} s" if posts else ""))
    return lines


def _problems(result: dict[str, Any]) -> list[str]:
    out = []
    labels = {c["key"]: c["label"] for c in result["contenders"]}
    for k, errs in result["samples"]["sequential"]["failures"].items():
        out += [f"{labels[k]}: {e}" for e in errs]
    for k, par in result["samples"]["parallel"].items():
        if par["failures"]:
            out.append(f"{labels[k]}: {par['failures']} of the parallel runs failed: {'; '.join(par['errors'])}")
    for k, ap in result["samples"]["active_ping"].items():
        for kind in ("active", "ping"):
            missed = sum(v is None for v in ap[kind])
            if missed:
                out.append(f"{labels[k]}: {missed} {kind} measurements timed out")
    for k, lives in result["samples"]["lifecycle"].items():
        for life in lives:
            for phase in ("run", "rm"):
                if life[phase].get("errors"):
                    out.append(f"{labels[k]}: Neutron errors during {phase}: {life[phase]['errors']}")
    cleanup = result.get("cleanup", {})
    if cleanup.get("leftovers"):
        out.append(f"left in Neutron after cleanup (then deleted directly): {cleanup['leftovers']}")
    out += result.get("errors", [])
    return out


# --- chart ----------------------------------------------------------------------------

def chart(result: dict[str, Any], path: Path) -> None:
    """Four panels: docker run -d (median, p90 whisker), docker rm -f, ACTIVE/ping, Neutron requests."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [c["key"] for c in result["contenders"]]
    labels = [c["label"].replace(" ", "\n", 1) for c in result["contenders"]]
    s = result["summary"]
    val = lambda f, k: s[f]["by_contender"][k]["value"]  # noqa: E731
    colors = ["#9e9e9e", "#607d8b", "#1f77b4", "#2ca02c", "#d62728", "#9467bd"][:len(keys)]
    fig, axes = plt.subplots(2, 2, figsize=(13, 8.5))
    x = range(len(keys))

    ax = axes[0][0]
    med = [val("run_median", k) or 0 for k in keys]
    hi = [max(0.0, (val("run_p90", k) or 0) - m) for k, m in zip(keys, med)]
    ax.bar(x, med, yerr=[[0] * len(keys), hi], capsize=6, color=colors)
    ax.set_title(f"docker run -d: median, whisker to p90 ({result['settings']['rounds']} runs)")
    ax.set_ylabel("seconds")
    for i, (m, h) in enumerate(zip(med, hi)):
        ax.annotate(f"{m:.2f}", (i, m + h), ha="center", va="bottom", fontsize=8, xytext=(0, 3),
                    textcoords="offset points")

    ax = axes[0][1]
    rm = [val("rm_median", k) or 0 for k in keys]
    par = [val("parallel_wall", k) or 0 for k in keys]
    ax.bar([i - 0.2 for i in x], rm, width=0.4, color=colors, label="docker rm -f, median")
    ax2 = ax.twinx()
    ax2.bar([i + 0.2 for i in x], par, width=0.4, color=colors, alpha=0.45, hatch="//",
            label="parallel docker run -d, wall")
    ax.set_title(f"docker rm -f median (solid, left) · {result['settings']['parallel']} parallel runs, wall "
                 "(hatched, right)", fontsize=10)
    ax.set_ylabel("seconds (rm)")
    ax2.set_ylabel(f"seconds ({result['settings']['parallel']} parallel)")

    ax = axes[1][0]
    act = [val("active_median", k) or 0 for k in keys]
    png = [val("ping_median", k) or 0 for k in keys]
    act0 = [val("active_from_start", k) or 0 for k in keys]
    png0 = [val("ping_from_start", k) or 0 for k in keys]
    ax.bar([i - 0.2 for i in x], act0, width=0.4, color="none", edgecolor="#ff7f0e", label="ACTIVE, from run start")
    ax.bar([i + 0.2 for i in x], png0, width=0.4, color="none", edgecolor="#17becf", label="ping, from run start")
    ax.bar([i - 0.2 for i in x], act, width=0.4, color="#ff7f0e", label="ACTIVE, after run returned")
    ax.bar([i + 0.2 for i in x], png, width=0.4, color="#17becf", label="ping, after run returned")
    ax.set_title("port ACTIVE / first ping (median): filled after docker run returned, outline from its start",
                 fontsize=10)
    ax.set_ylabel("seconds")
    ax.legend(fontsize=8)

    ax = axes[1][1]
    reads = [val("neutron_reads", k) or 0 for k in keys]
    writes = [val("neutron_writes", k) or 0 for k in keys]
    ax.bar(x, reads, color="#8c8c8c", label="reads")
    ax.bar(x, writes, bottom=reads, color="#d62728", label="writes")
    ax.set_title("Neutron requests per container lifecycle (counted by proxy)")
    ax.legend(fontsize=8)

    for row in axes:
        for a in row:
            a.set_xticks(list(x))
            a.set_xticklabels(labels, fontsize=8)
    fig.suptitle(f"kuryr-cnm benchmark {result['date']} (dockerd {result['environment']['dockerd']}, "
                 f"{result['environment']['cpus']} CPUs, shared machine)")
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)


def _self_check() -> None:
    """The statistics, on numbers worked out by hand (`python3 bench/report.py`)."""
    assert median([3.0, None, 1.0, 2.0]) == 2.0
    assert p90([float(i) for i in range(1, 11)]) == 9.1  # rank 0.9 * 9 = 8.1 -> 9 + 0.1
    assert p90([5.0]) == 5.0 and p90([None]) is None
    assert ratio(1.0, 0) is None and ratio(None, 2.0) is None and ratio(3.0, 2.0) == 1.5
    assert _cell({"value": 0.5, "vs_floor": 2.0, "vs_kuryr_libnetwork": None}, 2, "s") == "0.50 s (2.00× / –)"
    print("report self-check ok")


if __name__ == "__main__":
    _self_check()
