"""The context block of a peer's Google Benchmark JSON (bench/torch_*.py):
the fields reports/summarize.py groups machines by, named as seqk's own
binaries write them (bench/machine_context.cc)."""

import socket
import time


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def peer_context(executable, torch):
    return {
        "host_name": socket.gethostname(),
        "cpu_model": cpu_model(),
        "executable": executable,
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "torch_version": torch.__version__,
        "library_build_type": "release",
    }
