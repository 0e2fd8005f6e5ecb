"""``python -m deploy_fetcher.cli`` is the same as ``fetcher``."""

import sys

from deploy_fetcher.cli import main

sys.exit(main())
