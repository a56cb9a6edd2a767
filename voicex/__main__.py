from voicex.cli import main

raise SystemExit(main())
