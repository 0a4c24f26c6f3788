"""The pure core: events in, decisions and effects out. No IO, no clock, no third-party import
(tests/test_architecture.py says so). Everything that decides who hears whom lives here."""
