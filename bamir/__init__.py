"""bamir: brand-aware micro-influencer ranking (BAMIR and its peers) on one protocol."""

__version__ = "0.1.0"
