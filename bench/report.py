"""report.py — turn the raw output of bench/run.sh into results.md and a plot.

Input: a directory holding, per program and repeat, <program>.<n>.out
(stdout), .err (stderr) and .rc (exit status). Every stdout line of the
form "BENCH <figure> <impl> <ns_per_op>" is one measurement; a program may
also print "DESC <figure> <text>" to describe a figure in the report, and
"PAIRED <figure> <impl> <ratio>" for a figure timed in interleaved rounds:
impl's time over the reference's in one round (bench/pybench.py,
measure_paired), summed up under the figure's table as the median over all
rounds of all repeats.

Output: the median per (figure, impl) over the repeats, as one table per
figure grouped by area (the figure's first dotted part), written to the
markdown file and stdout, and a log-scale bar chart (PNG) drawn by gnuplot.
Exit status 1 if any program failed (or the plot could not be drawn).
PSHM_BENCH_NOTE, if set, is added to the header (e.g. what else was running).
Standard library only.
"""
import argparse
import datetime
import os
import platform
import re
import statistics
import subprocess
import sys
from collections import OrderedDict

# Ratios are taken against the first of these a figure has: the raw floor
# (bare POSIX calls, a plain int64 array, a bare process-shared pthread
# mutex for the locks) if measured, else pshm itself.
REFERENCE_IMPLS = ("posix", "int64_array", "pthread_mutex", "pshm")

# What each known figure measures; a program's DESC lines override these.
DESCRIPTIONS = {
    "block.create_close_unlink":
        "Create a 4096-byte block, close it, unlink it (pshm: fixed name; "
        "CPython: random name, as SharedMemory(create=True) makes one). "
        "pshm_tracked adds one send() to the tracker on create and one on unlink; "
        "pshm_tracked_nomap is pshm_tracked with PSHM_NOMAP (never mapped: no mmap, no munmap).",
    "block.attach_close":
        "Attach to an existing 4096-byte block by name and close it. "
        "CPython 3.11 also registers with its resource tracker on attach. "
        "pshm_tracked_nomap: PSHM_NOMAP, never mapped.",
    "block.populate_256MiB.create":
        "Creating a 256 MiB block, ns per whole block: without PSHM_POPULATE "
        "(pages reserved lazily) and with it (fallocate + MAP_POPULATE fault in every page). "
        "Each create wakes the family's idle tracker (about 30 µs here; docs/tracker.md, Costs).",
    "block.populate_256MiB.touch":
        "First write to every page of the new 256 MiB block, ns per whole block: "
        "page faults without PSHM_POPULATE, none with it.",
    "block.populate_256MiB.create_touch":
        "Create + first touch of every page of a 256 MiB block, ns per whole block: "
        "where PSHM_POPULATE moves the cost, and whether it saves any.",
    "list.get_int":
        "Read one int item of a 1,000-item list (pshm_list_get vs sl[i]); "
        "pshm_typed: pshm_list_get_int; "
        "int64_array: a plain int64_t array read, the floor.",
    "list.set_int":
        "Write one int item (pshm_list_set vs sl[i] = v); pshm_typed: "
        "pshm_list_set_int; int64_array: a plain store.",
    "list.get_str":
        "Read one str item (pshm: zero-copy pointer and length; CPython builds a str).",
    "list.set_str":
        "Write one str item that fits its allocated storage.",
    "list.create_1000":
        "Create a 1,000-item list of ints, then close and unlink it, ns per whole list.",
    "list.sum_1000":
        "Sum the 1,000 int items of a list, ns per whole sum (pshm: pshm_list_get per "
        "item; pshm_typed: pshm_list_get_int per item); int64_array: the same sum "
        "over a plain array; pshm_view: that array loop over a pshm_view of the list; "
        "pshm_view_checked: the same plus pshm_list_view_check after each sum.",
    "manager.block_create":
        "Through a running manager: ask it for a 4096-byte block (the server creates it, "
        "the client attaches), close the client's handle, release the block (the server "
        "unlinks it). CPython: smm.SharedMemory(4096), close, release via the server. "
        "pshm's server pre-makes a spare block of the last size while the client "
        "attaches (docs/manager.md).",
    "transfer.256MiB":
        "A child writes 256 MiB, the parent reads it all and verifies a checksum; "
        "ns per whole 256 MiB transfer. pshm: a fresh block per transfer "
        "(create, attach, page faults, unlink included); pshm_reuse: one block "
        "kept mapped by both; pipe: default 64 KiB pipe; pipe_1MiB: F_SETPIPE_SZ "
        "1 MiB; unix_socket: SOCK_STREAM socketpair; streams move 1 MiB chunks.",
}

BENCH_LINE = re.compile(r"^BENCH\s+(\S+)\s+(\S+)\s+([-+0-9.eE]+|nan|inf)\s*$")
DESC_LINE = re.compile(r"^DESC\s+(\S+)\s+(.+?)\s*$")
PAIRED_LINE = re.compile(r"^PAIRED\s+(\S+)\s+(\S+)\s+([-+0-9.eE]+)\s*$")
RAW_NAME = re.compile(r"^(?P<prog>.+)\.(?P<rep>\d+)\.rc$")


# ---- reading the raw runs -------------------------------------------------

class Results:
    """Every measurement and every failure found in the raw directory."""

    def __init__(self):
        self.values = OrderedDict()  # (figure, impl) -> [ns, ...]
        self.paired = OrderedDict()  # (figure, impl) -> [ratio per round, ...]
        self.descriptions = dict(DESCRIPTIONS)
        self.failures = []           # (program, repeat, reason, stderr tail)
        self.programs = []

    def add_run(self, prog, rep, rc, out, err):
        found = 0
        for line in out.splitlines():
            m = BENCH_LINE.match(line)
            if m:
                figure, impl, ns = m.group(1), m.group(2), float(m.group(3))
                self.values.setdefault((figure, impl), []).append(ns)
                found += 1
            elif (d := DESC_LINE.match(line)):
                self.descriptions[d.group(1)] = d.group(2)
            elif (p := PAIRED_LINE.match(line)):
                self.paired.setdefault((p.group(1), p.group(2)), []).append(float(p.group(3)))
        reason = None
        if rc == 124:
            reason = "timed out"
        elif rc != 0:
            reason = f"exit status {rc}"
        elif found == 0:
            reason = "printed no BENCH line"
        if reason:
            tail = "\n".join(err.strip().splitlines()[-5:])
            self.failures.append((prog, rep, reason, tail))


def read_text(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def load(raw_dir):
    results = Results()
    runs = []
    for entry in os.listdir(raw_dir):
        m = RAW_NAME.match(entry)
        if m:
            runs.append((int(m.group("rep")), m.group("prog")))
    for rep, prog in sorted(runs):
        base = os.path.join(raw_dir, f"{prog}.{rep}")
        try:
            rc = int(read_text(base + ".rc").strip() or "1")
        except ValueError:
            rc = 1
        if prog not in results.programs:
            results.programs.append(prog)
        results.add_run(prog, rep, rc, read_text(base + ".out"), read_text(base + ".err"))
    return results


# ---- the machine ------------------------------------------------------------

def command_output(args):
    try:
        return subprocess.run(args, capture_output=True, text=True, check=False,
                              timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def cpu_model():
    for line in read_text("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def build_type(build_dir):
    for line in read_text(os.path.join(build_dir, "CMakeCache.txt")).splitlines():
        if line.startswith("CMAKE_BUILD_TYPE:"):
            return line.split("=", 1)[1] or "(none)"
    return "unknown"


def header_lines(args):
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    commit = command_output(["git", "-C", repo, "rev-parse", "--short", "HEAD"])
    dirty = command_output(["git", "-C", repo, "status", "--porcelain", "--untracked-files=no"])
    return [
        f"- Date: {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
        f"- Machine: {command_output(['nproc'])} CPUs (`nproc`), {cpu_model()}",
        f"- Kernel: {platform.system()} {platform.release()}",
        f"- Python: {platform.python_version()} ({sys.executable})",
        f"- Build: `{os.path.relpath(args.build, repo)}`, CMAKE_BUILD_TYPE={build_type(args.build)}, "
        f"commit {commit or 'unknown'}{' (with local changes)' if dirty else ''}",
        f"- Repeats: {args.repeats} runs of every program; each figure is the median of its runs",
        # Other work on the machine skews figures; the load says how much there was.
        f"- Load average (1/5/15 min) when the report was written: "
        f"{' '.join(read_text('/proc/loadavg').split()[:3]) or 'unknown'}",
    ] + ([f"- Note: {os.environ['PSHM_BENCH_NOTE']}"] if os.environ.get("PSHM_BENCH_NOTE") else [])


# ---- tables --------------------------------------------------------------------

def format_ns(ns):
    if ns != ns:  # NaN
        return "nan"
    return f"{ns:.1f}" if abs(ns) < 100 else f"{ns:,.0f}"


def format_ratio(r):
    return f"{r:.2f}x" if r >= 0.1 else f"{r:.2g}x"


def human_time(ns):
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.3g} ns"


def figures_by_area(medians):
    """OrderedDict area -> OrderedDict figure -> [(impl, median, runs)]."""
    areas = OrderedDict()
    for (figure, impl), (median, runs) in medians.items():
        area = figure.split(".", 1)[0]
        areas.setdefault(area, OrderedDict()).setdefault(figure, []).append(
            (impl, median, runs))
    return areas


def reference_of(rows):
    impls = [impl for impl, _, _ in rows]
    for ref in REFERENCE_IMPLS:
        if ref in impls:
            return ref
    pshm_like = [impl for impl in impls if impl.startswith("pshm")]
    return pshm_like[0] if pshm_like else impls[0]


def paired_lines(figure, ref, paired):
    """One sentence per impl timed in interleaved rounds with `figure`."""
    lines = []
    for (fig, impl), ratios in paired.items():
        if fig == figure:
            lines.append(
                f"Paired: `{impl}` / `{ref}` within each interleaved round: median "
                f"{format_ratio(statistics.median(ratios))} (min {format_ratio(min(ratios))}, "
                f"max {format_ratio(max(ratios))}, {len(ratios)} rounds).")
    return lines + [""] if lines else []


def figure_table(figure, rows, descriptions, paired):
    ref = reference_of(rows)
    ref_ns = next(median for impl, median, _ in rows if impl == ref)
    lines = [f"### {figure}", "",
             f"| impl | median ns/op | ratio vs {ref} | min – max (runs) |",
             "|---|---:|---:|---:|"]
    for impl, median, runs in rows:
        ratio = format_ratio(median / ref_ns) if ref_ns > 0 else "–"
        spread = f"{format_ns(min(runs))} – {format_ns(max(runs))} ({len(runs)})"
        lines.append(f"| {impl} | {format_ns(median)} | {ratio} | {spread} |")
    what = descriptions.get(figure, "(no description given by its program)")
    lines += ["", f"Measured: {what} Ratio: median / median of `{ref}`.", ""]
    return lines + paired_lines(figure, ref, paired)


def failure_section(failures):
    if not failures:
        return []
    lines = ["## Failed runs", "",
             "These runs failed; figures below use only the runs that succeeded.", "",
             "| program | run | reason | last stderr lines |", "|---|---:|---|---|"]
    for prog, rep, reason, tail in failures:
        cell = tail.replace("|", "\\|").replace("\n", "<br>") or "(empty)"
        lines.append(f"| {prog} | {rep} | **FAILED**: {reason} | {cell} |")
    return lines + [""]


def markdown(args, results, medians, plot_name):
    lines = ["# pshm benchmark results", "",
             f"Written by `bash bench/run.sh {os.path.basename(args.build)}` "
             "(bench/report.py). Every figure is ns per operation; an operation "
             "is what the line under its table says (some are a whole 256 MiB "
             "block or transfer). Lower is better.", ""]
    lines += header_lines(args) + [""]
    lines += failure_section(results.failures)
    if plot_name:
        lines += [f"![ns per operation, log scale, per figure and impl]({plot_name})", ""]
    for area, figures in figures_by_area(medians).items():
        lines += [f"## {area}", ""]
        for figure, rows in figures.items():
            lines += figure_table(figure, rows, results.descriptions, results.paired)
    return "\n".join(lines)


# ---- the plot ---------------------------------------------------------------------

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
           "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#ad494a")


def gnuplot_script(medians, plot_path, data_path):
    """Horizontal bars, one row per (figure, impl), coloured by impl, grouped
    by figure; a log x axis because figures span ns to hundreds of ms."""
    impls = list(OrderedDict.fromkeys(impl for _, impl in medians))
    rows, ytics, blocks = [], [], {impl: [] for impl in impls}
    for figures in figures_by_area(medians).values():
        for figure, figure_rows in figures.items():
            if rows:
                rows.append(None)  # a blank row between figures
            for impl, median, _ in figure_rows:
                ytics.append(f'"{figure}  {impl}" {len(rows)}')
                blocks[impl].append((len(rows), median))
                rows.append((figure, impl))
    positive = [m for m, _ in medians.values() if m > 0]
    floor = 10 ** int(f"{min(positive):e}".split("e")[1]) if positive else 1
    ceiling = max(positive) * 8 if positive else 10
    with open(data_path, "w", encoding="utf-8") as f:
        for impl in impls:
            f.write(f"# {impl}\n")
            for y, median in blocks[impl] or [(-10, floor)]:
                f.write(f"{y} {max(median, floor)} \"{human_time(median)}\"\n")
            f.write("\n\n")
    height = max(400, 22 * len(rows) + 140)
    margin = max(len(f"{f}  {i}") for f, i in medians) + 3  # in characters
    linetypes = "\n".join(f'set linetype {i + 1} lc rgb "{PALETTE[i % len(PALETTE)]}"'
                          for i in range(len(impls)))
    return f"""
set terminal pngcairo size 1300,{height} enhanced font "sans,10" background rgb "white"
set output "{plot_path}"
{linetypes}
set title "pshm benchmarks: median ns per operation (log scale, lower is better)"
set logscale x
set xrange [{floor}:{ceiling}]
set format x "10^{{%L}}"
set xlabel "ns per operation"
set yrange [{len(rows) - 0.4}:-0.6]
set ytics ({", ".join(ytics)}) font "monospace,10" nomirror noenhanced
set grid xtics
set key outside right top title "impl" noenhanced
set style fill solid 0.85 border -1
set lmargin {margin}
impls = "{" ".join(impls)}"
plot for [i=0:{len(impls) - 1}] "{data_path}" index i using \\
        (sqrt({floor}*$2)):1:({floor}):2:($1-0.38):($1+0.38) with boxxyerror \\
        lt i+1 title word(impls, i+1) noenhanced, \\
     for [i=0:{len(impls) - 1}] "{data_path}" index i using ($2*1.15):1:3 with labels \\
        left font "sans,9" noenhanced notitle
"""


def draw(medians, plot_path):
    data_path = plot_path + ".dat"
    script = gnuplot_script(medians, plot_path, data_path)
    try:
        run = subprocess.run(["gnuplot"], input=script, text=True, capture_output=True,
                             timeout=60, check=False)
    except (OSError, subprocess.SubprocessError) as e:
        return f"gnuplot could not run: {e}"
    finally:
        if os.path.exists(data_path):
            os.unlink(data_path)
    if run.returncode != 0:
        return "gnuplot failed: " + run.stderr.strip()
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw", required=True)
    parser.add_argument("--repeats", type=int, required=True)
    parser.add_argument("--build", required=True)
    parser.add_argument("--markdown", required=True)
    parser.add_argument("--plot", required=True, help="PNG file to draw")
    args = parser.parse_args()

    results = load(args.raw)
    medians = OrderedDict((key, (statistics.median(runs), runs))
                          for key, runs in results.values.items())
    plot_error = draw(medians, args.plot) if medians else "no figures to plot"
    if plot_error:
        results.failures.append(("(plot)", 0, plot_error, ""))
    plot_name = None if plot_error else os.path.basename(args.plot)
    text = markdown(args, results, medians, plot_name)
    with open(args.markdown, "w", encoding="utf-8") as f:
        f.write(text + "\n")
    print(text)
    for prog, rep, reason, _ in results.failures:
        print(f"report.py: FAILED: {prog} run {rep}: {reason}", file=sys.stderr)
    return 1 if results.failures else 0


if __name__ == "__main__":
    sys.exit(main())
