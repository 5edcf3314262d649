#!/usr/bin/env python3
"""Draws a trace written by `hpxrun --trace` as one self-contained HTML page
(an SVG timeline, no scripts, no network): a row per locality and thread,
slices for sends, receives, actions and collectives, and each parcel as an
arrow from the slice that sent it to the one that received it.

For a quick look without a trace viewer, and for pictures of a run:

    python3 scripts/trace_view.py trace.json -o trace.html [--from MS --to MS]

Perfetto (ui.perfetto.dev, which reads the file inside the browser) shows
the same file with zoom and search.
"""

import argparse
import html
import json
import sys

COLOURS = {
    "send": "#4e79a7",
    "receive": "#59a14f",
    "action": "#f28e2b",
    "collective": "#b07aa1",
}
ROW = 22
LABEL_W = 170
WIDTH = 1400


def load(path):
    with open(path, encoding="utf-8") as f:
        trace = json.load(f)
    return trace["traceEvents"] if isinstance(trace, dict) else trace


def build(events, start_ms, end_ms):
    names = {}
    for e in events:
        if e.get("ph") == "M" and e.get("name") == "process_name":
            names[e["pid"]] = e["args"]["name"]
    slices, flows, opened = [], {}, {}
    for e in events:
        ph = e.get("ph")
        if ph == "X":
            slices.append((e["pid"], e["tid"], e["ts"], e["ts"] + e.get("dur", 0), e))
        elif ph == "b":
            opened[(e["pid"], e.get("cat"), e.get("id"))] = e
        elif ph == "e":
            b = opened.pop((e["pid"], e.get("cat"), e.get("id")), None)
            if b is not None:
                slices.append((b["pid"], "async", b["ts"], e["ts"], b))
        elif ph in ("s", "f"):
            flows.setdefault(e["id"], {})[ph] = e
    if not slices:
        sys.exit("no slices in the trace")
    t0 = min(s[2] for s in slices)
    lo = t0 + (start_ms * 1000 if start_ms is not None else 0)
    hi = t0 + end_ms * 1000 if end_ms is not None else max(s[3] for s in slices)
    rows = sorted({(s[0], s[1]) for s in slices}, key=lambda r: (r[0], r[1] == "async", str(r[1])))
    index = {r: i for i, r in enumerate(rows)}
    span = max(hi - lo, 1e-3)

    def x(ts):
        return LABEL_W + (ts - lo) / span * (WIDTH - LABEL_W - 10)

    height = 50 + ROW * len(rows)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        'font-family="sans-serif" font-size="11">',
        '<defs><marker id="a" viewBox="0 0 6 6" refX="6" refY="3" markerWidth="6" '
        'markerHeight="6" orient="auto"><path d="M0,0 L6,3 L0,6 z" fill="#333"/></marker></defs>',
    ]
    for (pid, tid), i in index.items():
        y = 30 + i * ROW
        shade = "#f4f4f4" if pid % 2 == 0 else "#ffffff"
        out.append(f'<rect x="0" y="{y}" width="{WIDTH}" height="{ROW}" fill="{shade}"/>')
        who = names.get(pid, f"locality {pid}")
        what = "collectives, waits" if tid == "async" else f"thread {tid}"
        out.append(f'<text x="4" y="{y + 15}">{html.escape(who)} · {what}</text>')
    for ms in range(0, int(span / 1000) + 1, max(1, int(span / 1000 / 10))):
        tx = x(lo + ms * 1000)
        out.append(f'<line x1="{tx}" y1="24" x2="{tx}" y2="{height}" stroke="#ddd"/>')
        out.append(f'<text x="{tx + 2}" y="18">{ms + (start_ms or 0):g} ms</text>')
    for pid, tid, a, b, e in slices:
        if b < lo or a > hi:
            continue
        y = 30 + index[(pid, tid)] * ROW + 3
        x0, x1 = x(max(a, lo)), x(min(b, hi))
        colour = COLOURS.get(e.get("cat"), "#999")
        name = html.escape(e.get("name", ""))
        out.append(
            f'<rect x="{x0:.1f}" y="{y}" width="{max(x1 - x0, 0.8):.1f}" height="{ROW - 6}" '
            f'fill="{colour}"><title>{name} ({(b - a):.1f} µs)</title></rect>'
        )
        if x1 - x0 > 7 * len(name.split("::")[-1]):
            out.append(
                f'<text x="{x0 + 2:.1f}" y="{y + 12}" fill="white">{name.split("::")[-1]}</text>'
            )
    for ends in flows.values():
        s, f = ends.get("s"), ends.get("f")
        if not s or not f or not (lo <= s["ts"] <= hi and lo <= f["ts"] <= hi):
            continue
        r0, r1 = index.get((s["pid"], s["tid"])), index.get((f["pid"], f["tid"]))
        if r0 is None or r1 is None:
            continue
        out.append(
            f'<line x1="{x(s["ts"]):.1f}" y1="{30 + r0 * ROW + ROW / 2}" '
            f'x2="{x(f["ts"]):.1f}" y2="{30 + r1 * ROW + ROW / 2}" stroke="#333" '
            'stroke-width="0.7" marker-end="url(#a)"/>'
        )
    legend = " ".join(
        f'<tspan fill="{c}">■</tspan> {k}' for k, c in COLOURS.items()
    )
    out.append(f'<text x="{LABEL_W}" y="{height - 6}">{legend} · arrows: parcels</text>')
    out.append("</svg>")
    return "\n".join(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trace")
    parser.add_argument("-o", "--output", default="trace.html")
    parser.add_argument("--from", dest="start", type=float, help="window start, ms after the first slice")
    parser.add_argument("--to", dest="end", type=float, help="window end, ms after the first slice")
    args = parser.parse_args()
    svg = build(load(args.trace), args.start, args.end)
    with open(args.output, "w", encoding="utf-8") as f:
        f.write(f"<!doctype html><meta charset='utf-8'><title>{html.escape(args.trace)}</title>\n")
        f.write("<body style='margin:0;background:white'>\n" + svg + "\n</body>\n")


if __name__ == "__main__":
    main()
