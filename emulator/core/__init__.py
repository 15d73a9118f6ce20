"""The sans-IO core: takes bytes, events and the current time; returns bytes and effects."""
