from voicex.server.cli import main

raise SystemExit(main())
