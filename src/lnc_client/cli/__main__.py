"""`python -m lnc_client.cli`: the same as the `lnc` command."""

import sys

from lnc_client.cli import main

sys.exit(main())
