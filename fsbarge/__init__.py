"""fsbarge: supervisor listen / whisper / barge for FreeSWITCH, with an audit trail."""

__version__ = "0.1.0"
