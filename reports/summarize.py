#!/usr/bin/env python3
"""Summarise seqk Google Benchmark JSON files as Markdown (on stdout).

Usage: summarize.py RESULT.json [RESULT.json ...] > summary.md

Rows are recognised by name, as bench/ (and bench/torch_recurrent.py) register them:
  <cell>_fwd/<impl>/B:../D:../H:../T:..   <cell>_fwdbwd/...
      (cell: lstm, gru, rnn_tanh, rnn_relu, lstm_l2 (two layers), lstm_bi (bidirectional);
       impl: seqk, onednn, seqk-vulkan<device index>, cudnn)
  s8_lstm_fwd/{padded,packed,bucketed}/B:../D:../H:../T:..
  scan_{fwd,bwd}/{1thread,threads,vulkan<i>}/C:../T:..
  s5_{mingru,minlstm}_fwdbwd/seqk/B:../D:../H:../T:..
  s6_{fwd,bwd}/{1thread,threads,loop}/B:../D:../N:../L:..   s6_decode/seqk/B:../D:../N:../T:..
  attn_{fwd,bwd}/{tiled,naive,torch,torch-cuda,vulkan<i>-tiled,vulkan<i>-naive}/H:../dh:../causal:{0,1}/n:..
  kv_decode/{seqk,vulkan<i>}/B:../H:../dh:../n:..   lstm_decode/seqk/B:../H:../n:..
  gemm/<role>/M:../N:../K:..            gemm_h1/{specialized,generic}/...
  gemm_h2/<SIMD target>/...             gemm_vulkan<device index>/<role>/M:../N:../K:..
Results of different machines (host name + CPU model) get one section each.
With repetitions, a row's time and counters are the median over them.
"""

import json
import math
import re
import statistics
import sys
from collections import OrderedDict

TO_MS = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}
SHAPE_PARAM = re.compile(r"^([A-Za-z]+):(\d+)$")
# On a shared machine other load comes in bursts that can halve a row's
# speed for one repetition; such rows are flagged rather than trusted.
NOISY_SPREAD = 1.25
NOISY_NOTE = (f"\\* repetitions of this row differ by more than {round((NOISY_SPREAD - 1) * 100)}% "
              "(other load on the machine?): its median is less certain.")
CONTEXT_FIELDS = [
    ("executable", "binary"),
    ("date", "date"),
    ("cpu_model", "CPU"),
    ("num_cpus", "logical CPUs"),
    ("simd_target", "SIMD target"),
    ("threads", "threads"),
    ("fma_peak_gflops", "FMA peak GFLOP/s"),
    ("onednn_version", "oneDNN"),
    ("commit", "commit"),
]


class Row:
    """All repetitions of one benchmark row."""

    def __init__(self, name, context):
        self.context = context  # of the file the row came from: its peaks are the row's
        parts = name.split("/")
        self.family = parts[0]
        self.variant = parts[1] if len(parts) > 1 else ""
        # Name parts Google Benchmark appends (min_time:..., real_time) are not shape parameters.
        self.shape = {}
        for part in parts[2:]:
            match = SHAPE_PARAM.match(part)
            if match:
                self.shape[match.group(1)] = int(match.group(2))
        self.label = ""
        self.times_ms = []
        self.counters = {}
        self.aggregate_medians = {}
        self.errors = []

    def add(self, entry):
        self.label = entry.get("label", self.label)
        if entry.get("error_occurred"):
            self.errors.append(entry.get("error_message", "error"))
            return
        scale = TO_MS.get(entry.get("time_unit", "ns"), 1e-6)
        values = {"time_ms": entry.get("real_time", 0.0) * scale}
        for key in ("GFLOP/s", "pct_peak", "wall_ms", "useful_tokens/s", "padding_pct", "useful_GFLOP/s", "GB/s",
                    "pct_triad", "triad_GB/s", "Gupdates/s", "state_bytes", "extra_MiB", "paired_ratio"):
            if key in entry:
                values[key] = entry[key]
        if entry.get("run_type") == "aggregate":
            if entry.get("aggregate_name") == "median":
                self.aggregate_medians = values
            return
        self.times_ms.append(values["time_ms"])
        for key, value in values.items():
            self.counters.setdefault(key, []).append(value)

    def ok(self):
        return bool(self.times_ms) or bool(self.aggregate_medians)

    def value(self, key):
        """Median over repetitions (or the file's median aggregate), None if absent."""
        if key in self.counters:
            return statistics.median(self.counters[key])
        return self.aggregate_medians.get(key)

    def repetitions(self):
        return len(self.times_ms)

    def best_ms(self):
        return min(self.times_ms) if self.times_ms else None

    def time_cell(self):
        """Median ms, marked * when repetitions disagree (see NOISY_NOTE)."""
        if not self.ok():
            return failure(self)
        noisy = len(self.times_ms) > 1 and max(self.times_ms) > NOISY_SPREAD * min(self.times_ms)
        return fmt(self.value("time_ms")) + (" *" if noisy else "")


class Machine:
    def __init__(self):
        self.contexts = []
        self.rows = OrderedDict()

    def rows_of(self, family):
        """The family's rows in a stable order (runs may interleave them randomly)."""
        rows = [row for row in self.rows.values() if row.family == family]
        return sorted(rows, key=lambda row: (row.variant, tuple(row.shape.values())))

    def find(self, family, variant, shape):
        for row in self.rows.values():
            if row.family == family and row.variant == variant and row.shape == shape:
                return row
        return None


def load(paths):
    machines = OrderedDict()
    unreadable = []
    for path in paths:
        try:
            with open(path) as f:
                data = json.load(f)
        except (OSError, ValueError) as e:
            unreadable.append(f"{path}: {e}")
            continue
        if not isinstance(data, dict):
            unreadable.append(f"{path}: not a Google Benchmark JSON object")
            continue
        context = data.get("context", {})
        key = (context.get("host_name", "?"), context.get("cpu_model", "?"))
        machine = machines.setdefault(key, Machine())
        machine.contexts.append(context)
        for entry in data.get("benchmarks", []):
            name = entry.get("run_name", entry.get("name", ""))
            machine.rows.setdefault(name, Row(name, context)).add(entry)
    return machines, unreadable


def number(text):
    """A context value (benchmark stores them as strings) as a float, or None."""
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def fmt(value, digits=3):
    if value is None:
        return "–"
    if value == 0:
        return "0"
    return f"{value:.{digits}g}" if abs(value) < 10 ** digits else f"{value:.0f}"


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def failure(row):
    """Short cell text for a row with no numbers."""
    if row is None:
        return "–"
    message = row.errors[0] if row.errors else "no data"
    if "crashed" in message:
        return "crashed"
    if "timed out" in message:
        return "timed out"
    return "failed"


def context_section(machine):
    header = ["", *[c.get("executable", "?").split("/")[-1] for c in machine.contexts]]
    rows = []
    for key, title in CONTEXT_FIELDS[1:]:
        values = [c.get(key) for c in machine.contexts]
        if key == "fma_peak_gflops":
            values = [fmt(number(v), 4) if v is not None else None for v in values]
        if any(v is not None for v in values):
            rows.append([title, *["–" if v is None else v for v in values]])
    return table(header, rows)


def shape_cells(shape, keys):
    return [shape.get(k, "–") for k in keys]


CELLS = ("lstm", "gru", "rnn_tanh", "rnn_relu", "lstm_l2", "lstm_bi")  # _l2: two layers; _bi: bidirectional


PAIRED_NOTE = ("It is paired: each oneDNN repetition times seqk's pass just before and after its own, and the "
               "column is the median over repetitions of oneDNN's time over the mean of those two (a shared "
               "machine's speed drifts over minutes by more than the two differ). The ms columns are the rows' own "
               "medians.")


def recurrent_section(machine, notes):
    rows, slower, paired = [], [], False
    for cell, (suffix, title) in ((c, p) for c in CELLS for p in (("_fwd", "forward"), ("_fwdbwd", "fwd+bwd"))):
        family = cell + suffix
        for seqk in machine.rows_of(family):
            if seqk.variant != "seqk":
                continue
            peer = machine.find(family, "onednn", seqk.shape)
            seqk_ms = seqk.value("time_ms")
            peer_ms = peer.value("time_ms") if peer is not None and peer.ok() else None
            if peer is not None and not peer.ok():
                ratio = failure(peer)
                shape = " ".join(f"{k}={v}" for k, v in seqk.shape.items())
                notes.append(f"oneDNN {cell} {title} {shape}: {peer.errors[0] if peer.errors else 'no data'}")
            else:
                # Paired where the peer's row timed seqk beside it (bench_onednn), else the ratio of medians.
                value = peer.value("paired_ratio") if peer is not None else None
                paired = paired or value is not None
                if value is None and seqk_ms and peer_ms:
                    value = peer_ms / seqk_ms
                ratio = fmt(value)
                if value is not None and value < 1:
                    slower.append(f"{cell} {title} B={seqk.shape.get('B', '?')} ({fmt(value)})")
            rows.append([
                cell, title, *shape_cells(seqk.shape, "BDHT"),
                seqk.time_cell(),
                peer.time_cell() if peer is not None else "–",
                ratio, fmt(seqk.value("GFLOP/s")), fmt(seqk.value("pct_peak"), 2),
                fmt(peer.value("GFLOP/s")) if peer_ms else "–",
            ])
    if not rows:
        return "No recurrent-layer rows."
    return table(["cell", "pass", "B", "D", "H", "T", "seqk ms", "oneDNN ms", "oneDNN/seqk time",
                  "seqk GFLOP/s", "seqk % peak", "oneDNN GFLOP/s"], rows) + \
        "\n\noneDNN/seqk time > 1 means seqk is faster." + (" " + PAIRED_NOTE if paired else "") + "\n\n" + \
        ("Rows where oneDNN is faster: " + "; ".join(slower) + "." if slower else "seqk is as fast or faster on every row.")


def vulkan_device_name(machine, index):
    for context in machine.contexts:
        description = context.get(f"vulkan_device_{index}")
        if description:
            return description.split(" | ")[0]
    return f"Vulkan device {index}"


def vulkan_section(machine):
    """seqk on each Vulkan device beside PyTorch/cuDNN (bench/torch_recurrent.py) where run."""
    rows = []
    for cell, (suffix, title) in ((c, p) for c in CELLS for p in (("_fwd", "forward"), ("_fwdbwd", "fwd+bwd"))):
        family = cell + suffix
        for seqk in machine.rows_of(family):
            if not seqk.variant.startswith("seqk-vulkan"):
                continue
            device = vulkan_device_name(machine, seqk.variant[len("seqk-vulkan"):])
            peer = machine.find(family, "cudnn", seqk.shape)
            seqk_ms, seqk_wall = seqk.value("time_ms"), seqk.value("wall_ms")
            peer_ok = peer is not None and peer.ok()
            peer_ms = peer.value("time_ms") if peer_ok else None
            peer_wall = peer.value("wall_ms") if peer_ok else None
            rows.append([
                cell, title, *shape_cells(seqk.shape, "BDHT"), device,
                seqk.time_cell(), fmt(seqk_wall),
                peer.time_cell() if peer is not None else "–", fmt(peer_wall),
                fmt(peer_ms / seqk_ms) if seqk_ms and peer_ms else "–",
                fmt(peer_wall / seqk_wall) if seqk_wall and peer_wall else "–",
                fmt(seqk.value("GFLOP/s")),
            ])
    if not rows:
        return "No Vulkan rows (no Vulkan device found, or seqk built without Vulkan)."
    return table(["cell", "pass", "B", "D", "H", "T", "device", "seqk GPU ms", "seqk wall ms", "cuDNN GPU ms",
                  "cuDNN wall ms", "cuDNN/seqk GPU time", "cuDNN/seqk wall", "seqk GFLOP/s"], rows) + \
        "\n\nGPU time: timestamp queries (seqk) and CUDA events (PyTorch/cuDNN, fp32, TF32 off) around the " \
        "pass; wall: what the caller waits per pass, recording and submission included. A ratio > 1 means " \
        "seqk is faster. cuDNN columns are empty where bench/torch_recurrent.py did not run (no CUDA)."


def vulkan_gemm_section(machine):
    rows = []
    for family in sorted({row.family for row in machine.rows.values() if row.family.startswith("gemm_vulkan")}):
        device = vulkan_device_name(machine, family[len("gemm_vulkan"):])
        for row in machine.rows_of(family):
            rows.append([device, row.variant, *shape_cells(row.shape, "MNK"), row.time_cell(),
                         fmt(row.value("GFLOP/s"))])
    if not rows:
        return "No Vulkan GEMM rows (they run on GPUs only)."
    return table(["device", "role", "M", "N", "K", "GPU ms", "GFLOP/s"], rows)


def s8_section(machine):
    """Claim S8: the same long-tailed batch padded, packed and bucketed."""
    rows = []
    for row in machine.rows_of("s8_lstm_fwd"):
        rows.append([row.variant, *shape_cells(row.shape, "BDHT"), row.time_cell(),
                     fmt(row.value("useful_tokens/s")), fmt(row.value("padding_pct"), 2),
                     fmt(row.value("useful_GFLOP/s"))])
    if not rows:
        return "No S8 rows."
    return table(["batching", "B", "D", "H", "T", "ms", "useful tokens/s", "% computed tokens that are padding",
                  "useful GFLOP/s"], rows) + \
        "\n\nOne LSTM forward over B sequences with long-tailed lengths between 1 and T; every way gives the " \
        "same results for the real steps (tests/test_variable_length.cc)."


def s5_section(machine):
    """Claim S5 (minGRU/minLSTM): a training step of the min-RNN against the cell it simplifies."""
    rows = []
    for full, small in (("gru", "mingru"), ("lstm", "minlstm")):
        for row in machine.rows_of(f"s5_{small}_fwdbwd"):
            base = machine.find(f"{full}_fwdbwd", "seqk", row.shape)
            small_ms = row.value("time_ms")
            base_ms = base.value("time_ms") if base is not None and base.ok() else None
            rows.append([f"{small} vs {full}", *shape_cells(row.shape, "BDHT"), row.time_cell(),
                         base.time_cell() if base is not None else "–",
                         fmt(base_ms / small_ms) if base_ms and small_ms else "–"])
    if not rows:
        return "No S5 rows."
    return table(["pair", "B", "D", "H", "T", "min-RNN fwd+bwd ms", "full cell fwd+bwd ms", "speedup"], rows) + \
        "\n\nFeng et al. report 175x (minGRU) and 235x (minLSTM) per training step at T = 512 on a GPU, against " \
        "sequential PyTorch GRU/LSTM loops; here both sides are seqk's own CPU kernels."


def scan_section(machine):
    """The linear-recurrence scan over T, as GB/s and % of the triad bandwidth of the same run."""
    rows = []
    for family, title in (("scan_fwd", "forward"), ("scan_bwd", "backward")):
        for row in machine.rows_of(family):
            if "T" not in row.shape:
                continue  # the BigO / RMS fits
            rows.append([title, row.variant, row.shape["T"], row.time_cell(), fmt(row.value("GB/s")),
                         fmt(row.value("pct_triad"), 2)])
    if not rows:
        return "No scan rows."
    triad = next((c.get("triad_gbps") for c in machine.contexts if c.get("triad_gbps")), None)
    out = table(["pass", "threads", "T", "ms", "GB/s", "% of triad"], rows) + \
        f"\n\nTriad bandwidth measured once at start-up: {fmt(number(triad))} GB/s. Minimal traffic counted: " \
        "3 arrays forward (a, b, h), 5 backward (a, h, dh, da, db). The `paired_triad` row times a triad pass " \
        "over the same arrays before every scan pass, so both see the same load from other processes; its " \
        "% is the ratio of the two."
    bar_row = next((row for row in machine.rows_of("scan_fwd")
                    if row.variant == "paired_triad" and "T" in row.shape and row.ok()), None)
    if bar_row is not None:
        pct = bar_row.value("pct_triad")
        verdict = "met" if pct >= SCAN_BAR_PCT else "not met"
        out += f"\n\nBar (forward at T = {bar_row.shape['T']} ≥ {SCAN_BAR_PCT:g}% of the paired triad): " \
            f"{fmt(pct, 2)}% (triad {fmt(bar_row.value('triad_GB/s'))} GB/s), {verdict}."
    return out


def s6_section(machine):
    """The selective scan over L beside a plain scalar loop, and the decode step against context length."""
    rows = []
    for family, title in (("s6_fwd", "forward"), ("s6_bwd", "backward")):
        for row in machine.rows_of(family):
            if "L" not in row.shape:
                continue  # the BigO / RMS fits
            loop = machine.find("s6_fwd", "loop", row.shape) if family == "s6_fwd" else None
            speedup = "–"
            if row.variant != "loop" and loop is not None and loop.ok() and row.value("time_ms"):
                speedup = fmt(loop.value("time_ms") / row.value("time_ms"))
            rows.append([title, row.variant, *shape_cells(row.shape, "DNL"), row.time_cell(),
                         fmt(row.value("Gupdates/s")), speedup])
    decode = [[*shape_cells(row.shape, "DNT"), fmt(row.value("time_ms") * 1e3 if row.value("time_ms") else None),
               fmt(row.value("state_bytes"))]
              for row in machine.rows_of("s6_decode") if "T" in row.shape]
    if not rows and not decode:
        return "No S6 rows."
    out = table(["pass", "threads", "D", "N", "L", "ms", "state updates/ns", "speedup over the scalar loop"], rows)
    if decode:
        out += "\n\nDecode, one step after a context of T steps (its cost should not grow with T):\n\n" + \
            table(["D", "N", "context T", "µs per step", "state bytes"], decode)
    return out


def loglog_slope(points):
    """Least-squares slope of log(time) against log(n): the measured exponent."""
    if len(points) < 2:
        return None
    xs = [math.log(n) for n, _ in points]
    ys = [math.log(t) for _, t in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx if sxx else None


# Below this length fixed costs still show; the exponent is fitted above it.
SLOPE_MIN_LENGTH = 1024
# Issue 6's bar: the linear scan forward at large T reaches this % of the triad.
SCAN_BAR_PCT = 80
# Issue 5's bar: the tiled causal forward at n = 4096 reaches this % of the FMA peak.
ATTENTION_BAR = (4096, 50.0)


def attention_section(machine):
    """Claim S2's attention half: tiled vs naive over n, % of peak, memory, and the fitted exponents."""
    rows, slopes = [], []
    for family, title in (("attn_fwd", "forward"), ("attn_bwd", "backward")):
        for causal in (0, 1):
            tiled = [r for r in machine.rows_of(family)
                     if r.variant == "tiled" and r.shape.get("causal") == causal and "n" in r.shape]
            for row in sorted(tiled, key=lambda r: r.shape["n"]):
                naive = machine.find(family, "naive", row.shape)
                naive_ok = naive is not None and naive.ok()
                torch = machine.find(family, "torch", row.shape)
                torch_ms = torch.value("time_ms") if torch is not None and torch.ok() else None
                rows.append([title, causal, row.shape["n"], row.time_cell(), fmt(row.value("pct_peak"), 2),
                             naive.time_cell() if naive is not None else "–",
                             fmt(naive.value("pct_peak"), 2) if naive_ok else "–",
                             torch.time_cell() if torch is not None else "–",
                             fmt(torch_ms / row.value("time_ms")) if torch_ms and row.value("time_ms") else "–",
                             fmt(row.value("extra_MiB")), fmt(naive.value("extra_MiB")) if naive_ok else "–"])
            for form in ("tiled", "naive"):
                points = [(r.shape["n"], r.value("time_ms")) for r in machine.rows_of(family)
                          if r.variant == form and r.shape.get("causal") == causal and r.ok()
                          and r.shape.get("n", 0) >= SLOPE_MIN_LENGTH]
                slope = loglog_slope(points)
                if slope is not None:
                    slopes.append(f"{title} {form}, causal {causal}: time ∝ n^{slope:.2f} "
                                  f"(n = {points[0][0]}..{points[-1][0]})")
    if not rows:
        return "No attention rows."
    shape = next(r.shape for r in machine.rows.values() if r.family == "attn_fwd" and "n" in r.shape)
    out = table(["pass", "causal", "n", "tiled ms", "tiled % peak", "naive ms", "naive % peak", "PyTorch ms",
                 "PyTorch/tiled time", "tiled extra MiB", "naive extra MiB"], rows)
    out += (f"\n\nOne sequence, {shape.get('H', '?')} heads of {shape.get('dh', '?')}. % peak counts only unmasked "
            "work (4·dh FLOPs per visible query-key pair forward, 10·dh backward) against the FMA peak of the "
            "same run. Extra MiB: the growth of the peak resident set during the calls, beyond inputs and outputs "
            "(the naive form's n² probabilities; the tiled form's scratch is too small to show).")
    torch_context = next((c for c in machine.contexts if c.get("torch_attention")), None)
    if torch_context:
        out += (f" PyTorch {torch_context.get('torch_version', '?')} on the CPU: "
                f"{torch_context['torch_attention']}, matrix products on {torch_context.get('blas', '?')}.")
    if slopes:
        out += "\n\nFitted exponents (log-log least squares):\n\n" + "\n".join(f"- {s}" for s in slopes)
    bar_n, bar_pct = ATTENTION_BAR
    bar_row = machine.find("attn_fwd", "tiled", {**shape, "causal": 1, "n": bar_n})
    if bar_row is not None and bar_row.ok():
        pct = bar_row.value("pct_peak")
        verdict = "met" if pct >= bar_pct else "not met"
        out += f"\n\nBar (tiled causal forward at n = {bar_n} ≥ {bar_pct:g}% of peak): {fmt(pct, 2)}%, {verdict}."
    return out


def vulkan_attention_section(machine):
    """The attention rows of each Vulkan GPU: tiled and naive GPU time, beside PyTorch on CUDA where run."""
    rows = []
    for family, title in (("attn_fwd", "forward"), ("attn_bwd", "backward")):
        for tiled in machine.rows_of(family):
            match = re.fullmatch(r"vulkan(\d+)-tiled", tiled.variant)
            if not match or "n" not in tiled.shape:
                continue
            naive = machine.find(family, f"vulkan{match.group(1)}-naive", tiled.shape)
            torch = machine.find(family, "torch-cuda", tiled.shape)
            tiled_ms = tiled.value("time_ms")
            torch_ms = torch.value("time_ms") if torch is not None and torch.ok() else None
            rows.append([vulkan_device_name(machine, match.group(1)), title, tiled.shape.get("causal"),
                         tiled.shape["n"], tiled.time_cell(), fmt(tiled.value("GFLOP/s")),
                         naive.time_cell() if naive is not None else "–",
                         torch.time_cell() if torch is not None else "–",
                         fmt(torch_ms / tiled_ms) if torch_ms and tiled_ms else "–"])
    if not rows:
        return "No Vulkan attention rows (they run on GPUs only)."
    return table(["device", "pass", "causal", "n", "tiled GPU ms", "tiled GFLOP/s", "naive GPU ms",
                  "PyTorch CUDA ms", "PyTorch/tiled time"], rows) + \
        "\n\nGPU time from timestamp queries; GFLOP/s counts only unmasked work, as on the CPU. PyTorch columns " \
        "are empty where bench/torch_attention.py did not run on CUDA."


def s4_section(machine):
    """Claim S4: the cost and state of one generated token against the context length n."""
    def by_length(family, variant, key):
        return {r.shape[key]: r for r in machine.rows_of(family) if r.variant == variant and key in r.shape and r.ok()}

    kv = by_length("kv_decode", "seqk", "n")
    lstm = by_length("lstm_decode", "seqk", "n")
    s6 = by_length("s6_decode", "seqk", "T")
    vulkan = {}
    for row in machine.rows_of("kv_decode"):
        if row.variant.startswith("vulkan") and "n" in row.shape and row.ok():
            vulkan.setdefault(row.variant, {})[row.shape["n"]] = row
    lengths = sorted(set(kv) | set(lstm) | set(s6) | {n for rows in vulkan.values() for n in rows})
    if not lengths:
        return "No decode rows."

    def us(row):
        return fmt(row.value("time_ms") * 1e3) if row is not None and row.value("time_ms") else "–"

    def state(row):
        return fmt(row.value("state_bytes") / 1024) if row is not None and row.value("state_bytes") else "–"

    header = ["context n", "KV-cache attention µs", "KV cache KiB", "LSTM µs", "LSTM state KiB",
              "S6 µs", "S6 state KiB", *[f"KV {name} µs" for name in sorted(vulkan)]]
    rows = [[n, us(kv.get(n)), state(kv.get(n)), us(lstm.get(n)), state(lstm.get(n)), us(s6.get(n)),
             state(s6.get(n)), *[us(vulkan[name].get(n)) for name in sorted(vulkan)]] for n in lengths]
    out = table(header, rows)
    shapes = []
    for name, rows_of in (("KV-cache attention", kv), ("LSTM", lstm), ("S6", s6)):
        if rows_of:
            shape = next(iter(rows_of.values())).shape
            shapes.append(name + " " + " ".join(f"{k}={v}" for k, v in shape.items() if k not in ("n", "T")))
    out += "\n\nPer generated token, after a context of n tokens (" + "; ".join(shapes) + ")."
    slopes = []
    for name, rows_of in (("KV-cache attention", kv), ("LSTM", lstm), ("S6", s6)):
        points = [(n, r.value("time_ms")) for n, r in sorted(rows_of.items())]
        slope = loglog_slope(points)
        if slope is not None:
            slopes.append(f"{name}: time ∝ n^{slope:.2f} (n = {points[0][0]}..{points[-1][0]})")
    if slopes:
        out += " Fitted exponents: " + "; ".join(slopes) + "."
    return out


def gemm_section(machine):
    rows = [[row.variant, *shape_cells(row.shape, "MNK"), row.label or "–",
             row.time_cell(), fmt(row.value("GFLOP/s")), fmt(row.value("pct_peak"), 2)]
            for row in machine.rows_of("gemm")]
    if not rows:
        return "No GEMM rows."
    return table(["role", "M", "N", "K", "for", "ms", "GFLOP/s", "% peak"], rows)


def h1_section(machine):
    rows = []
    for specialized in machine.rows_of("gemm_h1"):
        if specialized.variant != "specialized":
            continue
        generic = machine.find("gemm_h1", "generic", specialized.shape)
        spec_ms = specialized.value("time_ms")
        gen_ms = generic.value("time_ms") if generic is not None and generic.ok() else None
        speedup = fmt(gen_ms / spec_ms) if spec_ms and gen_ms else "–"
        spec_best, gen_best = specialized.best_ms(), generic.best_ms() if generic is not None else None
        best_speedup = fmt(gen_best / spec_best) if spec_best and gen_best else "–"
        rows.append([*shape_cells(specialized.shape, "MNK"), specialized.time_cell(),
                     generic.time_cell() if generic is not None else "–", speedup, best_speedup,
                     fmt(specialized.value("pct_peak"), 2),
                     fmt(generic.value("pct_peak"), 2) if gen_ms else "–"])
    if not rows:
        return "No H1 rows."
    return table(["M", "N", "K", "specialised ms", "generic ms", "generic/specialised time",
                  "same, best times", "specialised % peak", "generic % peak"], rows) + \
        "\n\ngeneric/specialised time > 1 means the specialised kernels are faster. Other load only " \
        "slows a run down, so the ratio of the best times is the less noisy one on a busy machine."


def h2_section(machine):
    gemm = {row.variant: row for row in machine.rows_of("gemm_h2")}
    # The peaks the H2 rows were divided by, else those of any file.
    contexts = [row.context for row in gemm.values()] + machine.contexts
    peaks = {}
    for context in contexts:
        for key, value in context.items():
            if key.startswith("fma_peak_gflops_"):
                peaks.setdefault(key[len("fma_peak_gflops_"):], number(value))
    rows = []
    by_peak = sorted(peaks, key=lambda t: -(peaks[t] or 0))
    for target in by_peak + [t for t in gemm if t not in peaks]:
        row = gemm.get(target)
        rows.append([target, fmt(peaks.get(target)),
                     row.time_cell() if row is not None else "–",
                     fmt(row.value("GFLOP/s")) if row is not None and row.ok() else "–",
                     fmt(row.value("pct_peak"), 2) if row is not None and row.ok() else "–"])
    if not rows:
        return "No per-target rows."
    shape = next(iter(gemm.values())).shape if gemm else {}
    what = "GEMM " + " ".join(f"{k}={v}" for k, v in shape.items()) if shape else "GEMM"
    return table(["target", "FMA peak GFLOP/s", f"{what} ms", "GFLOP/s", "% of target peak"], rows)


def summarize(paths):
    machines, unreadable = load(paths)
    out = ["# seqk benchmark summary", ""]
    for path_error in unreadable:
        out += [f"Could not read {path_error}", ""]
    for (host, cpu), machine in machines.items():
        notes = []
        reps = max((row.repetitions() for row in machine.rows.values()), default=0)
        out += [f"## {host} ({cpu})", "", context_section(machine), "",
                f"Times are wall-clock medians over {reps} repetition(s); % peak is of the measured "
                "FMA peak on all threads.", "", NOISY_NOTE, "",
                "### Recurrent layers", "", recurrent_section(machine, notes), ""]
        out += [f"- {note}" for note in notes] + ([""] if notes else [])
        out += ["### S8: padded vs packed vs bucketed batches", "", s8_section(machine), ""]
        out += ["### Linear-recurrence scan", "", scan_section(machine), ""]
        out += ["### S5: minGRU / minLSTM against GRU / LSTM", "", s5_section(machine), ""]
        out += ["### S5: selective scan (S6)", "", s6_section(machine), ""]
        out += ["### S2: attention, tiled vs naive", "", attention_section(machine), ""]
        out += ["### S4: decoding one token against the context length", "", s4_section(machine), ""]
        out += ["### Recurrent layers on Vulkan devices", "", vulkan_section(machine), "",
                "### GEMM on Vulkan GPUs", "", vulkan_gemm_section(machine), "",
                "### S2: attention on Vulkan GPUs", "", vulkan_attention_section(machine), ""]
        out += ["### GEMM at the LSTM shapes", "", gemm_section(machine), "",
                "### H1: specialised vs generic GEMM micro-kernels", "", h1_section(machine), "",
                "### H2: one source on every SIMD target", "", h2_section(machine), ""]
    return "\n".join(out)


def main(argv):
    if len(argv) < 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    print(summarize(argv[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
