from rotinv.bench import main

raise SystemExit(main())
