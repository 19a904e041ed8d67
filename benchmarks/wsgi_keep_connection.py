"""The app with one SQLite connection kept per worker (no connect/close per request).

Only for the benchmark's what-if (``--keep-connection``): it shows what the foundation's per-request
connect/close costs a sign-in.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from accounts.db import database  # noqa: E402
from app import create_app  # noqa: E402

app = create_app()
app.teardown_request_funcs[None] = [f for f in app.teardown_request_funcs.get(None, [])
                                    if f.__name__ != "_close_db"]


@app.before_request
def _keep():
    database.connect(reuse_if_open=True)
