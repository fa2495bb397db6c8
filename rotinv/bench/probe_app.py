"""`python -m rotinv.bench.probe_app APP PAGES_JSON DEFAULT_PAGE`: the app's first run of each
page listed, through AppTest, then a new visitor's first run of each, then the peak resident
memory of this process.

AppTest runs the app's scripts in-process, so this process *is* the app's process: it
imports nothing before the clock starts but the standard library.
"""

import json
import logging
import resource
import sys
import time


def quiet_streamlit() -> None:
    """No 'missing ScriptRunContext' / 'No runtime found' warnings: this is bare mode on purpose."""
    for name in list(logging.root.manager.loggerDict):
        if name.startswith("streamlit"):
            logging.getLogger(name).setLevel(logging.ERROR)


def peak_rss() -> int:
    """The peak resident memory of this process, in bytes."""
    status = open("/proc/self/status").read() if sys.platform.startswith("linux") else ""
    hwm = [int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmHWM:")]
    # Not getrusage's ru_maxrss where VmHWM exists: Linux keeps ru_maxrss across fork and exec,
    # so a subprocess of the big benchmark process would report the benchmark's own peak.
    if hwm:
        return hwm[0]
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)


def run_page(app, page: str, switch: bool) -> dict:
    """The page's run in this AppTest session: its seconds and the first errors it raised."""
    if switch:
        app.switch_page(page)
    began = time.perf_counter()
    app.run()
    return {"page": page, "seconds": time.perf_counter() - began,
            "errors": [str(e.value)[:200] for e in app.exception][:3]}


def main(app_file: str, pages: list[str], default_page: str) -> dict:
    started = time.perf_counter()
    from streamlit.testing.v1 import AppTest

    quiet_streamlit()
    imported = time.perf_counter()
    app = AppTest.from_file(app_file, default_timeout=1800)
    runs = []
    for index, page in enumerate(pages):
        runs.append(run_page(app, page, index > 0 or page != default_page))
        runs[-1].update(since_start=time.perf_counter() - started, title=[t.value for t in app.title][:1])
    # Then a newcomer on the server that is now running: a new session (its own session
    # state, the process's imports and shared caches as the first visitor left them).
    visitors = [run_page(AppTest.from_file(app_file, default_timeout=1800), page, page != default_page)
                for page in pages]
    return {"import_seconds": imported - started, "runs": runs, "visitors": visitors, "peak_rss": peak_rss()}


if __name__ == "__main__":
    print("BENCH_JSON " + json.dumps(main(sys.argv[1], json.loads(sys.argv[2]), sys.argv[3])))  # probe.MARKER
