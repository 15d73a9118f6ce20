"""The thin asyncio shell around the sans-IO core: the pty, TCP sockets, timers."""
