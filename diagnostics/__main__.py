import sys

from diagnostics.cli.main import main

sys.exit(main())
