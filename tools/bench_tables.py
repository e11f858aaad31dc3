"""Turns one tools/bench run (criterion's output in CRITERION_DIR, by
default target/criterion, and the mem and latency probes' output in the
environment) into the README's results table and
the full tables of docs/performance.md. Called by tools/bench; not meant
to be run alone."""

import json
import os
import pathlib
import re

root = pathlib.Path(os.environ.get("CRITERION_DIR", "target/criterion"))
PEERS = [("quick_cache", "quick_cache"), ("scc", "scc"), ("moka", "moka"), ("mutex_lru", "Mutex<LruCache>")]
QC, SCC, ML = 0, 1, 3


def ops_per_sec(group, engine, param):
    d = root / group / engine / param / "new"
    if not d.exists():
        return None
    est = json.loads((d / "estimates.json").read_text())
    bench = json.loads((d / "benchmark.json").read_text())
    elements = bench["throughput"]["Elements"]
    return elements / est["median"]["point_estimate"] * 1e9


def median_ns(group, engine, param):
    d = root / group / engine / param / "new"
    return json.loads((d / "estimates.json").read_text())["median"]["point_estimate"]


def mops(x):
    return "–" if x is None else f"{x / 1e6:.2f}"


def ratio(a, b):
    return "–" if a is None or b is None else f"{a / b:.2f}×"


def met(ok):
    return "yes" if ok else "**no**"


out = []
rows = []
for op in ["get_hit", "get_miss", "insert", "take", "ticket", "mix"]:
    for dist in ["zipf", "uniform"]:
        for size in ["1k", "100k", "1M"]:
            group = f"{op}_{dist}_{size}"
            if not (root / group).exists():
                continue
            for t in ["1t", "2t", "4t", "8t"]:
                tc = ops_per_sec(group, "tlscache", t)
                if tc is None:
                    continue
                peers = [ops_per_sec(group, p, t) for p, _ in PEERS]
                rows.append((op, dist, size, t[:-1], tc, peers))

# Targets first.
mix2 = next((r for r in rows if r[0] == "mix" and r[1] == "zipf" and r[2] == "100k" and r[3] == "2"), None)
latency = {}
stalls = None
for line in os.environ["LATENCY_OUT"].splitlines():
    m = re.match(r"(.+?): p50 (\d+) ns, p99 (\d+) ns, p99.9 (\d+) ns", line)
    if m:
        latency[m.group(1)] = tuple(int(m.group(i)) for i in (2, 3, 4))
    m = re.match(r"(?:tickets )?stalls: (\d+) per second", line)
    if m and stalls is None:
        stalls = int(m.group(1))
per = {}
for line in os.environ["MEM_OUT"].splitlines():
    m = re.match(r"(\S+): (\d+) entries held, ([\d.]+) bytes per entry", line)
    if m:
        per[m.group(1)] = float(m.group(3))

out.append("Targets (issue 6), from this run:\n")
out.append("| target | measured | met |")
out.append("|---|---|---|")
if mix2:
    tc, qc, ml = mix2[4], mix2[5][QC], mix2[5][ML]
    out.append(f"| 90/9/1 zipf, 100k, 2 threads: ≥ 2× quick_cache | {tc / qc:.2f}× | {met(tc / qc >= 2)} |")
    out.append(f"| 90/9/1 zipf, 100k, 2 threads: ≥ 5× Mutex<LruCache> | {tc / ml:.2f}× | {met(tc / ml >= 5)} |")
if "tlscache" in latency:
    p999 = latency["tlscache"][2]
    out.append(f"| p99.9 get, 90/9/1 zipf, 2 threads: ≤ 500 ns | {p999} ns | {met(p999 <= 500)} |")
if "tlscache" in per and "quick_cache" in per:
    r = per["tlscache"] / per["quick_cache"]
    out.append(f"| bytes per entry ≤ quick_cache's | {r:.2f}× quick_cache's | {met(r <= 1)} |")

out.append("\nThroughput (`cargo bench -p tlscache-benches --bench suite`), median, in millions of operations per second over all threads, and tlscache's throughput divided by each peer's:\n")
out.append("| op | ids | entries | threads | tlscache Mops/s | " + " | ".join(f"÷ {name}" for _, name in PEERS) + " |")
out.append("|---|---|---|---|---|" + "---|" * len(PEERS))
for op, dist, size, t, tc, peers in rows:
    out.append(f"| {op} | {dist} | {size} | {t} | {mops(tc)} | " + " | ".join(ratio(tc, p) for p in peers) + " |")

sweeps = []
for due in ["0.1%", "1%", "50%"]:
    d = root / "expiry_sweep_1M" / "tlscache" / due
    if d.exists():
        ns = median_ns("expiry_sweep_1M", "tlscache", due)
        expired = json.loads((d / "new" / "benchmark.json").read_text())["throughput"]["Elements"]
        sweeps.append(f"| {due} ({expired}) | {ns / 1e3:.1f} µs | {ns / expired:.1f} ns |")
if sweeps:
    out.append("\nExpiry: one `flush_expired` over 1M entries of which a share is due (the cost follows the number due, not the 1M):\n")
    out.append("| due | sweep | per expired entry |")
    out.append("|---|---|---|")
    out.extend(sweeps)
idle = ops_per_sec("expiry_get_1M", "tlscache", "idle")
busy = ops_per_sec("expiry_get_1M", "tlscache", "during_sweeps")
if idle and busy:
    out.append(f"\nA get of a long-lived entry in that cache: {mops(idle)} Mops/s alone, {mops(busy)} Mops/s while another thread re-inserts and sweeps 10% of it over and over ({busy / idle:.2f}× of alone).")

hb = ops_per_sec("baseline_get_hit_zipf_100k", "hashbrown", "1t")
core1 = ops_per_sec("baseline_get_hit_zipf_100k", "tlscache", "1t")
if hb and core1:
    out.append(f"\nSingle-threaded get hit, 100k entries, zipf ids: tlscache-core called directly runs at {mops(core1)} Mops/s, an unsynchronised hashbrown map with the same hasher at {mops(hb)} Mops/s: **{core1 / hb:.2f}×** (issue 2's target: ≥ 0.6×).")
    tsc1 = ops_per_sec("baseline_get_hit_zipf_100k", "tlscache_tsc", "1t")
    if tsc1:
        out.append(f"On the time-stamp counter (`MonotonicClock`) instead of its default coarse clock, the same get runs at {mops(tsc1)} Mops/s ({tsc1 / hb:.2f}× hashbrown).")

pol = []
for name in ["lookup", "take", "new_session"]:
    for t in ["1t", "2t"]:
        core = ops_per_sec(f"policy_{name}_100k", "tlscache", t)
        copy = ops_per_sec(f"policy_{name}_100k", "tlscache-copy", t)
        policy = ops_per_sec(f"policy_{name}_100k", "tlscache-policy", t)
        ossl = ops_per_sec(f"policy_{name}_100k", "openssl", t)
        if core and policy:
            pol.append(f"| {name} | {t[:-1]} | {mops(core)} | {mops(copy)} | {mops(policy)} | {mops(ossl)} | {policy / core:.2f}× | {ratio(policy, copy)} | {ratio(policy, ossl)} |")
if pol:
    out.append("\nPolicy overhead, 100k sessions, zipf ids: tlscache-policy's `lookup`, single-use `lookup_once` (then the session stored again) and new session (a `Session` built from a 256-byte state and stored by `handshake_finished`) against tlscache-core's `get`, `take` and `put_with_ttl`, and against OpenSSL's own cache in one `SSL_CTX` (`SSL_has_matching_session_id`, `SSL_CTX_remove_session`, `SSL_CTX_add_session` of a new `SSL_SESSION`). tlscache-core shares one state among all its entries; tlscache-copy is the same core holding a copy of the state per session in one allocation, as the policy layer does (and OpenSSL, in several), so that policy ÷ copy is the layer's own cost and copy ÷ core (the two core columns) what a value per session costs, whichever layer holds it:\n")
    out.append("| op | threads | tlscache-core Mops/s | tlscache-copy Mops/s | tlscache-policy Mops/s | OpenSSL internal Mops/s | policy ÷ core | policy ÷ copy | policy ÷ OpenSSL |")
    out.append("|---|---|---|---|---|---|---|---|---|")
    out.extend(pol)

if latency:
    timer = latency.get("timer")
    out.append("\nLatency (`cargo run --release -p tlscache-benches --bin latency -- ENGINE...`, and with `--tickets`): every operation at 2 threads timed with the TSC, 100k capacity, 200k zipf ids; lookups and writes (stores and takes) of the 90/9/1 mix, and the writes of TLS 1.3 ticket traffic (a take and two stores per connection)" + (f"; the timer itself costs p50 {timer[0]} ns and is included" if timer else "") + (f". A busy loop on this machine sees {stalls} pauses of over 10 µs per second, so any operation of a microsecond meets one about {stalls / 1e6 * 1e3:.1f} times in a thousand: a p99.9 of several microseconds is partly the machine's" if stalls else "") + ":\n")
    out.append("| engine | operations | p50 | p99 | p99.9 | p99.9 ÷ quick_cache's |")
    out.append("|---|---|---|---|---|---|")
    for kind, suffix in (("mix lookups", ""), ("mix writes", " writes"), ("ticket writes", " writes")):
        prefix = "tickets " if kind.startswith("ticket") else ""
        q = latency.get(f"{prefix}quick_cache{suffix}")
        for name, (p50, p99, p999) in latency.items():
            if not name.startswith(prefix) or name.endswith(" writes") != bool(suffix):
                continue
            engine = name[len(prefix):len(name) - len(suffix)]
            if engine in ("timer", "stalls") or (not prefix and engine.startswith("tickets ")):
                continue
            rel = f"{p999 / q[2]:.2f}×" if q else "–"
            out.append(f"| {engine} | {kind} | {p50} ns | {p99} ns | {p999} ns | {rel} |")

if per:
    out.append("\nMemory (`cargo run --release -p tlscache-benches --bin mem -- <engine>`): 1M entries, 32-byte keys, one shared 64-byte state (copied by the engines that copy states), resident-set growth:\n")
    out.append("| engine | bytes per entry | ÷ quick_cache |")
    out.append("|---|---|---|")
    for name, b in per.items():
        q = per.get("quick_cache")
        out.append(f"| {name} | {b:.1f} | {b / q:.2f}× |" if q else f"| {name} | {b:.1f} | – |")

head = f"Measured on {os.environ['MACHINE']} by `{os.environ['COMMAND']}`.\n\n"
block = head + "\n".join(out) + "\n"
print(block)

# The README's one table: every operation at 100k zipf ids, 1 and 2
# threads, against the peers; the rest of the run goes to the docs.
brief = ["| op | threads | tlscache Mops/s | ÷ quick_cache | ÷ scc | ÷ Mutex<LruCache> |", "|---|---|---|---|---|---|"]
for op, dist, size, t, tc, peers in rows:
    if dist == "zipf" and size == "100k" and t in ("1", "2"):
        brief.append(f"| {op} | {t} | {mops(tc)} | {ratio(tc, peers[QC])} | {ratio(tc, peers[SCC])} | {ratio(tc, peers[ML])} |")
notes = []
if "tlscache" in latency and "quick_cache" in latency:
    notes.append(f"p99.9 at 2 threads, tlscache against quick_cache: mix lookups {latency['tlscache'][2]} against {latency['quick_cache'][2]} ns" + (f", mix writes {latency['tlscache writes'][2]} against {latency['quick_cache writes'][2]} ns" if "tlscache writes" in latency and "quick_cache writes" in latency else "") + (f", ticket writes {latency['tickets tlscache writes'][2]} against {latency['tickets quick_cache writes'][2]} ns" if "tickets tlscache writes" in latency and "tickets quick_cache writes" in latency else "") + ".")
if "tlscache" in per and "quick_cache" in per:
    notes.append(f"Bytes per entry: {per['tlscache']:.1f}, {per['tlscache'] / per['quick_cache']:.2f}× quick_cache's.")
readme_block = (
    head
    + "Throughput (`cargo bench -p tlscache-benches --bench suite`), 100k entries, zipf ids, median Mops/s over all threads, and tlscache's throughput divided by each peer's (`get_hit`, `get_miss`: lookups; `insert`: stores over twice the capacity; `take`: a take and the store that puts it back; `ticket`: TLS 1.3 tickets, a take and two stores; `mix`: 90% lookups, 9% stores, 1% takes):\n\n"
    + "\n".join(brief)
    + "\n\n"
    + " ".join(notes)
    + ("\n\n" if notes else "")
    + "Every table of this run (targets, every size, distribution and thread count, expiry, the policy layer against the core and OpenSSL's own cache, latency, memory) is in [docs/performance.md](docs/performance.md#benchmark-tables).\n"
)


def replace_block(path, text):
    """Writes `text` between the bench markers of `path`."""
    f = pathlib.Path(path)
    body = f.read_text()
    start, end = "<!-- bench:start -->\n", "<!-- bench:end -->"
    if start not in body or end not in body:
        raise SystemExit(f"{path} has no bench markers")
    before, rest = body.split(start, 1)
    _, after = rest.split(end, 1)
    f.write_text(before + start + text + end + after)
    print(f"{path} updated")


if os.environ.get("WRITE_README") == "1":
    replace_block("README.md", readme_block)
    replace_block("docs/performance.md", block)
