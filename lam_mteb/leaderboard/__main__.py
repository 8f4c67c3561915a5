"""``python -m lam_mteb.leaderboard`` = ``lam-mteb leaderboard``."""

from lam_mteb.leaderboard import main

raise SystemExit(main())
