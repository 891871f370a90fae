"""``python -m givtcp_async`` runs the command line."""

import sys

from givtcp_async.cli import main

sys.exit(main())
