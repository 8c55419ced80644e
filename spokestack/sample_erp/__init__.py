"""A small sample ERP for the demo and the tests: a real HTTP JSON service, standard library only.

Core agent tools reach an agency's ERP through one ERP client; this package gives that client
something real to talk to (seeded clients, past projects with outcomes, team, briefs, media
benchmarks, and writes for drafts, plans and briefs with idempotency keys). See `server.py` for
the contract and `data.py` for the seeded data.

    python -m spokestack.sample_erp --port 8765            # the demo's ERP
    server, base_url = start_sample_erp(allow_reset=True)  # in a test
    server.stop()
"""

from .data import AGENCIES, DEMO_API_KEYS
from .server import ErpConfig, SampleErpServer, make_server, start_sample_erp, stop_sample_erp

__all__ = ["AGENCIES", "DEMO_API_KEYS", "ErpConfig", "SampleErpServer", "make_server", "start_sample_erp",
           "stop_sample_erp"]
