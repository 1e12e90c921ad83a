import sys

from eegfm.cli.main import main

sys.exit(main())
