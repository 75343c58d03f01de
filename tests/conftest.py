"""Suite-wide set-up: what gradio_client downloads stays in one folder that is removed when the tests end.

gradio_client downloads every output file of every call (a reconstruction's downloads are 100+ MiB) into
GRADIO_TEMP_DIR, by default /tmp/gradio, and never removes them: a full run left 7 GB there. The variable is read
when gradio_client is imported, so it is set here, before any test module imports it.
"""

import os
import shutil
import tempfile

_CLIENT_DOWNLOADS = tempfile.mkdtemp(prefix="vggt-mv-client-downloads-")
os.environ.setdefault("GRADIO_TEMP_DIR", _CLIENT_DOWNLOADS)


def pytest_sessionfinish(session, exitstatus):
    """Remove the client's downloads with the session (only the folder made above, never one set by the caller)."""
    shutil.rmtree(_CLIENT_DOWNLOADS, ignore_errors=True)
