from rotinv.bench.cli import main

raise SystemExit(main())
