"""What an interrupted run (Ctrl-C, SIGTERM) tells Prefect on its way out: best effort, in about a second.

The CLI's signal handler calls these before it exits; they hold the Prefect-specific parts (a private
Prefect attribute among them), so ``cli/`` stays a shell and a Prefect upgrade is mended here.
"""

from __future__ import annotations

import subprocess
import threading

__all__ = ["MARK_TIMEOUT_S", "mark_flow_run_interrupted", "stop_temporary_api"]


def stop_temporary_api() -> None:
    """Stop the temporary Prefect API this process started, if any, within about a second.

    Prefect's own ``stop()`` waits up to 5 s for open connections (Dask workers); this terminates the
    server process and kills it after 0.8 s. It reads Prefect's private ``SubprocessASGIServer._instances``
    (no public list of running temporary servers exists): if a Prefect release drops it, nothing is stopped
    here and Prefect's exit handler stops the server a few seconds later.
    """
    try:
        from prefect.server.api.server import SubprocessASGIServer

        for server in list(SubprocessASGIServer._instances.values()):
            process = server.server_process
            if process is not None:
                process.terminate()
                try:
                    process.wait(timeout=0.8)
                except subprocess.TimeoutExpired:
                    process.kill()
    except Exception:  # noqa: BLE001 - best effort: the process exits either way
        pass


#: At most this long (seconds) is spent telling a Prefect server that an interrupted run is over.
MARK_TIMEOUT_S = 3.0


def mark_flow_run_interrupted(name: str) -> None:
    """On a Prefect server that outlives this process (``PREFECT_API_URL``), set the interrupted flow run
    Cancelled, so the server does not list it as running for ever; at most :data:`MARK_TIMEOUT_S` seconds,
    best effort (a server that does not answer leaves it as it was)."""
    try:
        from prefect.context import FlowRunContext
        from prefect.settings import PREFECT_API_URL

        context = FlowRunContext.get()
        if context is None or context.flow_run is None or not PREFECT_API_URL.value():
            return  # no run, or the temporary API, which ends with this process
        run_id = context.flow_run.id

        def mark() -> None:
            from prefect.client.orchestration import get_client
            from prefect.states import Cancelled

            with get_client(sync_client=True) as client:
                client.set_flow_run_state(run_id, Cancelled(message=f"interrupted ({name}); the calls written "
                                                                    "before are kept"), force=True)

        marker = threading.Thread(target=mark, daemon=True)
        marker.start()
        marker.join(MARK_TIMEOUT_S)
    except Exception:  # noqa: BLE001 - best effort: the process exits either way
        pass
