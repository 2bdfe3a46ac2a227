"""`python -m lnc_client.server`: the same as `lnc serve`."""

import sys

from lnc_client.server.cli import main

sys.exit(main())
