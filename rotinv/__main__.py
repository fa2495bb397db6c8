from rotinv.cli import main

raise SystemExit(main())
