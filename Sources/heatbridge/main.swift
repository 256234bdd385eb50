// Synchronous entry point: valgrind 3.19 crashes on an async main (see docs/swift-notes.md), so commands that
// need async work block on a semaphore while a detached task does it.
HeatbridgeCommand.main()
