import sys

from mcp_ledger.server.cli import main

sys.exit(main())
