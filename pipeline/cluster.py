"""Where extraction and cross-validation run: this process (``local``), a Dask ``LocalCluster`` of N
worker processes (``dask-local:N``, for one big machine) or an existing Dask cluster
(``tcp://host:8786``: started by the user with dask-jobqueue/SLURM, Kubernetes, ``dask scheduler``).

Dask is imported only when a cluster is asked for. A scheduler that does not answer is a clear
error within ``CONNECT_SECONDS``, never a hang. Results never depend on where work ran: every task
is a pure function of its inputs (seeded clones, batch-independent embeddings).
"""

from __future__ import annotations

import contextlib
import logging
import re

from pipeline.errors import ConfigError

log = logging.getLogger(__name__)
CONNECT_SECONDS = 5
_LOCAL_N = re.compile(r"^dask-local:(\d+)$")
_ADDRESS = re.compile(r"^(tcp|tls|ws|wss|inproc)://\S+$")
EXPECTED = "'local', 'dask-local:N' (N worker processes) or a scheduler address such as tcp://host:8786"


def scheduler_ok(value) -> bool:
    """Whether a ``scheduler`` setting is well formed (checked at study load, no import)."""
    if not isinstance(value, str):
        return False
    match = _LOCAL_N.match(value)
    return value == "local" or (match is not None and int(match.group(1)) >= 1) or bool(_ADDRESS.match(value))


def is_local(value) -> bool:
    return value in (None, "local")


@contextlib.contextmanager
def dask_client(scheduler, where="scheduler"):
    """A connected ``distributed.Client`` for the setting (a LocalCluster is closed afterwards)."""
    try:
        from distributed import Client, LocalCluster  # noqa: PLC0415
    except ImportError:
        raise ConfigError(f"{where}: {scheduler!r} needs Dask's distributed scheduler, which is not installed",
                          hint="pip install 'dask[distributed]' (it is in requirements-common.txt)") from None
    match = _LOCAL_N.match(scheduler)
    if match:
        n = int(match.group(1))
        with LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                          silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
            log.info("%s: a local Dask cluster of %d worker process(es)", where, n)
            yield client
        return
    try:
        client = Client(scheduler, timeout=f"{CONNECT_SECONDS}s")
    except (OSError, TimeoutError) as exc:
        raise ConfigError(f"{where}: no Dask scheduler answered at {scheduler} within {CONNECT_SECONDS} s "
                          f"({type(exc).__name__}: {exc})",
                          hint="Start it first (`dask scheduler`, dask-jobqueue, Kubernetes...) and check the "
                               "address and port, or use 'local' / 'dask-local:N'.") from None
    try:
        workers = client.scheduler_info().get("workers", {})
        if not workers:
            log.warning("%s: the scheduler at %s has no workers yet; tasks wait until one joins", where, scheduler)
        log.info("%s: connected to %s (%d worker(s))", where, scheduler, len(workers))
        yield client
    finally:
        client.close()


def describe(client):
    """The cluster as the stage record notes it: workers, threads, memory."""
    workers = client.scheduler_info().get("workers", {})
    return {"scheduler": client.scheduler.address, "workers": len(workers),
            "threads": sum(w.get("nthreads", 0) for w in workers.values()),
            "memory_gb": round(sum(w.get("memory_limit", 0) for w in workers.values()) / 1e9, 1)}
