"""The receiving ends of `medstream deliver` for the tests: they live in `medstream_tools.peers`
(the demo, a tool, starts them too and never imports tests/)."""

from medstream_tools.peers import FhirPeer, MllpPeer, StoreScp

__all__ = ["FhirPeer", "MllpPeer", "StoreScp"]
